"""Relay -> direct upgrade across real NATs: a client that relays through a blind relay on purpose
(``relay_through`` / JS ``relayThrough``) between two port-restricted cone NATs, where a consistent punch
works. The stream opens through the relay; both sides keep punching; once the punch gets through, the
stream moves to the direct path and the data after the move arrives intact. peerdht on both ends, and
each side against unmodified JS hyperdht 6.34 (JS moves its side with ``changeRemote``; ours follows, or
moves first and JS follows)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from typing import Any

import matrix_lib as ml
import pytest
from natlab_tools import start_testnet
from tools.natlab import Host, Lab, NatType

pytestmark = [pytest.mark.netns]

IDLE = 6.0
"""Seconds between the exchange through the relay and the one after it (the punch runs meanwhile)."""


@pytest.fixture(scope="module")
def upgrade_lab(netns_ok: None) -> Iterator[tuple[Lab, dict[str, Host], list[str], str]]:
    with Lab() as lab:
        hosts = {
            "boot": lab.add_public("boot"),
            "relay": lab.add_public("relay"),
            "server": lab.add_private("server", NatType.PORT_RESTRICTED_CONE),
            "client": lab.add_private("client", NatType.PORT_RESTRICTED_CONE),
            "server-sym": lab.add_private("serversym", NatType.SYMMETRIC),
            "client-sym": lab.add_private("clientsym", NatType.SYMMETRIC),
        }
        testnet, bootstrap = start_testnet(lab, hosts["boot"], size=5)
        relay, key = ml.start_relay_node(lab, hosts["relay"], bootstrap)
        if relay is None:
            testnet.close(interrupt=True)
            pytest.fail(f"relay node: {key}")
        yield lab, hosts, bootstrap, key
        relay.close()
        testnet.close(interrupt=True)


@pytest.mark.parametrize(
    ("server_impl", "client_impl"),
    [
        ("py", "py"),
        pytest.param("py", "js", marks=pytest.mark.skipif(shutil.which("node") is None, reason="no node")),
        pytest.param("js", "py", marks=pytest.mark.skipif(shutil.which("node") is None, reason="no node")),
    ],
)
def test_relayed_connection_moves_to_the_punched_path(
    upgrade_lab: tuple[Lab, dict[str, Host], list[str], str], server_impl: str, client_impl: str
) -> None:
    lab, hosts, bootstrap, relay_key = upgrade_lab
    # A JS server moves its stream to its punch socket when its punch connects; libudx then sends what
    # it still had in flight to the relay from that socket, which our relay must pass (one try in ten
    # lost the JS server's first packet before it did: tests/core/test_relay_udx.py)
    res: dict[str, Any] = ml.run_pair(
        lab,
        hosts["server"],
        hosts["client"],
        bootstrap,
        impl=server_impl,
        client_impl=client_impl,
        idle=IDLE,
        size=64 * 1024,
        timeout=30,
        client_args=["--relay-through", relay_key],
    )
    print(f"\n{server_impl} server <- {client_impl} client: {res}", file=sys.stderr)
    assert res.get("ok"), res
    server_ips = {hosts["server"].ip, hosts["server"].public_ip}
    if client_impl == "py":
        assert res["remote"][0] == hosts["relay"].ip, "the stream did not open through the relay"
    else:  # JS races relay pairing against its punch: either may open the stream
        assert res["remote"][0] in server_ips | {hosts["relay"].ip}
    assert res["payload"] and res["after_idle"], "data lost around the move"
    assert res["remote_after"][0] in server_ips, f"still relayed after {IDLE} s: {res['remote_after']}"
    if server_impl == "py":
        stats = [e["stats"] for e in res["server_events"] if e.get("event") == "stats"]
        assert stats, res["server_events"]
        if client_impl == "py" or stats[0].get("relayed"):
            assert stats[0].get("relayed") == 1 and stats[0].get("upgraded") == 1, stats
        else:  # the JS client's punch opened our stream before the relay paired
            assert stats[0].get("relay_aborts") == 1, stats


@pytest.mark.parametrize(("server", "client"), [("server-sym", "client"), ("server", "client-sym")])
def test_a_relayed_connection_does_not_move_to_birthday_sockets(
    upgrade_lab: tuple[Lab, dict[str, Host], list[str], str], server: str, client: str
) -> None:
    """One side symmetric: its punch would use birthday sockets, which a relayed stream cannot move to
    (the stream lives on another socket). peerdht refuses that punch while relayed and the connection
    stays on the relay, carrying data before and after the idle time."""
    lab, hosts, bootstrap, relay_key = upgrade_lab
    # A JS server moves its stream to its punch socket when its punch connects; libudx then sends what
    # it still had in flight to the relay from that socket, which our relay must pass (one try in ten
    # lost the JS server's first packet before it did: tests/core/test_relay_udx.py)
    res: dict[str, Any] = ml.run_pair(
        lab,
        hosts[server],
        hosts[client],
        bootstrap,
        impl="py",
        idle=IDLE,
        size=64 * 1024,
        timeout=30,
        client_args=["--relay-through", relay_key],
    )
    print(f"\n{server} <- {client}: {res}", file=sys.stderr)
    assert res.get("ok"), res
    assert res["remote"][0] == hosts["relay"].ip
    assert res["payload"] and res["after_idle"]
    assert res["remote_after"][0] == hosts["relay"].ip
