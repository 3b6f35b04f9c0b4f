"""Long-lived connections: a connection through two NATs, left idle for 120 s, still carries data.

The routers' conntrack UDP timeouts are set to 30 s for both unreplied and replied flows (Linux keeps a
replied flow 120 s by default, which would let a 120 s idle pass by luck), so the NAT mappings survive
only if keep-alives cross them more often than every 30 s. peerdht (server behind a symmetric NAT, client
behind a port-restricted one: a lost mapping on the symmetric side comes back on a new port, which kills
the connection), JS hyperdht (port-restricted on both sides) and, when this peerdht has a relay, a peerdht
pair behind symmetric NATs on both sides (connected through a relay node on the public segment) idle in the
same 120 s window.

In the same window a control pair (peerdht, same NATs) runs with secret-stream keep-alives disabled and
idles 60 s: its mappings expire and its connection dies, which shows that the 30 s timeouts bite and that
the keep-alives are what keeps the other connections up.
"""

from __future__ import annotations

import shutil
import threading
from typing import Any

import matrix_lib as ml
import pytest
from natlab_tools import start_testnet
from tools.natlab import Lab, NatType

pytestmark = [pytest.mark.netns, pytest.mark.slow]

IDLE = 120.0
"""Seconds without application data."""
CONTROL_IDLE = 60.0
"""Seconds the control pair (no keep-alives) idles: twice the NAT timeout."""
NAT_TIMEOUT = 30
"""The routers' conntrack UDP timeouts (unreplied and replied), seconds."""


def test_idle_connection_survives_nat_timeouts(lab: Lab) -> None:
    boot = lab.add_public("boot")
    pairs: dict[str, tuple[Any, Any]] = {
        "py": (
            lab.add_private("pysrv", NatType.SYMMETRIC, udp_timeout=NAT_TIMEOUT),
            lab.add_private("pycli", NatType.PORT_RESTRICTED_CONE, udp_timeout=NAT_TIMEOUT),
        ),
    }
    control = (
        lab.add_private("nksrv", NatType.SYMMETRIC, udp_timeout=NAT_TIMEOUT),
        lab.add_private("nkcli", NatType.PORT_RESTRICTED_CONE, udp_timeout=NAT_TIMEOUT),
    )
    relay_host = lab.add_public("relay")
    pairs["relay"] = (
        lab.add_private("rlsrv", NatType.SYMMETRIC, udp_timeout=NAT_TIMEOUT),
        lab.add_private("rlcli", NatType.SYMMETRIC, udp_timeout=NAT_TIMEOUT),
    )
    if shutil.which("node") is not None:
        pairs["js"] = (
            lab.add_private("jssrv", NatType.PORT_RESTRICTED_CONE, udp_timeout=NAT_TIMEOUT),
            lab.add_private("jscli", NatType.PORT_RESTRICTED_CONE, udp_timeout=NAT_TIMEOUT),
        )
    for server, client in pairs.values():
        assert lab.udp_timeouts(server) == (NAT_TIMEOUT, NAT_TIMEOUT)
        assert lab.udp_timeouts(client) == (NAT_TIMEOUT, NAT_TIMEOUT)
    testnet, bootstrap = start_testnet(lab, boot, size=5)
    relay, _reason = ml.start_relay_node(lab, relay_host, bootstrap)
    if relay is None:
        del pairs["relay"]
    results: dict[str, dict[str, Any]] = {}

    def run(name: str) -> None:
        server, client = pairs[name]
        impl = "js" if name == "js" else "py"
        results[name] = ml.run_pair(
            lab, server, client, bootstrap, impl=impl, size=8192, idle=IDLE, timeout=45
        )

    def run_control() -> None:
        results["control"] = ml.run_pair(
            lab, *control, bootstrap, impl="py", idle=CONTROL_IDLE, timeout=45, extra_args=["--no-keepalive"]
        )

    threads = [threading.Thread(target=run, args=(name,)) for name in pairs]
    threads.append(threading.Thread(target=run_control))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if relay is not None:
        relay.close()
    testnet.close(interrupt=True)
    if "relay" in results:
        assert results["relay"].get("strategy") == "relay", results["relay"]
    ctl = results.pop("control")
    assert ctl.get("payload"), f"control: no connection: {ctl}"
    assert not ctl.get("after_idle"), (
        f"control: without secret-stream keep-alives the connection survived {CONTROL_IDLE} s idle through "
        f"{NAT_TIMEOUT} s NAT timeouts; something else keeps the mappings alive now, so drop the control: {ctl}"
    )
    for name, res in results.items():
        assert res.get("payload"), f"{name}: no connection or first exchange failed: {res}"
        assert res.get("after_idle"), f"{name}: the connection died during {IDLE} s idle: {res}"
        assert res.get("remote_after") == res.get("remote"), res
        assert res["ok"], res
