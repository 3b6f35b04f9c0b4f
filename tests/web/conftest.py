"""Browser and WebRTC tests: they run only inside a throw-away network namespace.

``tests/test_web_netns.py`` runs each ``tests/web/test_*.py`` file as its own pytest process through
``scripts/netns-run.sh`` (lo plus a veth pair with both ends inside, 198.51.100.2/24, a default route), so
Chromium and aiortc never see the machine's own interfaces. Run by hand the same way::

    sudo scripts/netns-run.sh python3 -m pytest tests/web/test_webrtc_smoke.py

Collected anywhere else (a plain ``pytest`` run), these tests are skipped, never run on the host network.
"""

from __future__ import annotations

import os
import socket

import pytest


def in_test_netns() -> bool:
    """True inside a namespace made by ``scripts/netns-run.sh``: its only links are lo and our veth pair."""
    if os.environ.get("PEERDHT_TEST_NETNS") != "1":
        return False
    try:
        return {name for _, name in socket.if_nameindex()} <= {"lo", "pdw0", "pdw1"}
    except OSError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if in_test_netns():
        return
    skip = pytest.mark.skip(reason="browser/WebRTC test: runs inside scripts/netns-run.sh (tests/test_web_netns.py)")
    for item in items:
        if "tests/web/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)
