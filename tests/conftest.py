"""Shared fixtures: every test starts from the same seed and with grad mode on."""
import numpy as np
import pytest

import chainrule as cr


@pytest.fixture(autouse=True)
def _seeded():
    cr.manual_seed(0)
    np.random.seed(0)
    yield
