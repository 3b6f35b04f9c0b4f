"""Pytest fixtures for the NAT lab (:mod:`tools.natlab`).

Tests that use them are marked ``@pytest.mark.netns`` and skip with a clear reason when not root or when
``ip netns``/``nft`` are unavailable. Stale labs of dead test processes are swept at session start; every lab
a test creates is torn down when the test ends, passed or failed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tools.natlab import Lab, lab_ids, sweep, unavailable_reason


@pytest.fixture(scope="session")
def netns_ok() -> Iterator[None]:
    """Skip unless a lab can be built here; sweep stale labs before, check for leftovers after."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    sweep()
    yield
    mine = [lid for lid in lab_ids() if lid.split("-")[1] == str(os.getpid())]
    sweep()
    assert not mine, f"labs left behind by this test session: {mine}"


@pytest.fixture
def lab(netns_ok: None) -> Iterator[Lab]:
    """An empty lab, torn down after the test whatever its outcome."""
    with Lab() as the_lab:
        yield the_lab
