from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: tools/


@pytest.fixture
def punching_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connect's holepunch fails as between two randomising NATs (HOLEPUNCH_DOUBLE_RANDOMIZED_NATS)
    and the same-LAN shortcut finds nothing: on loopback only a relay can then connect."""
    import peerdht.aio.hyperdht.connect as connect_mod
    from peerdht.hyper.handshake import HolepunchDoubleRandomized

    async def no_punch(self: object, relay: object, server_address: object) -> object:
        raise HolepunchDoubleRandomized()

    async def no_lan(*args: object) -> None:
        return None

    monkeypatch.setattr(connect_mod.Puncher, "run", no_punch)
    monkeypatch.setattr(connect_mod, "_lan_shortcut", no_lan)
