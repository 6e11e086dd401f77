"""Shared fixtures: every test starts from the same seed and with grad mode on."""
import numpy as np
import pytest

import chainrule as cr


@pytest.fixture(autouse=True)
def _seeded():
    cr.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def torch():
    """PyTorch, the oracle of the comparison tests; they skip (never fail) without it."""
    return pytest.importorskip(
        "torch", reason="PyTorch is not installed (pip install torch==2.13.0 to compare with it)")
