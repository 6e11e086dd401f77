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


# Lines tests report for the end of the run (how many cases a fuzz or sweep tried), printed
# even under -q so that CI's log shows them.
_SUMMARY: list[str] = []


@pytest.fixture
def summary_line():
    return _SUMMARY.append


def pytest_terminal_summary(terminalreporter):
    if _SUMMARY:
        terminalreporter.section("cases tried")
        for line in _SUMMARY:
            terminalreporter.write_line(line)
