"""Loss and delay on a host's link (nftables loss; tc netem delay where the kernel has it)."""

from __future__ import annotations

import pytest
from natlab_tools import run_tool, start_stun

from peerdht.testing.natlab import Lab, NatType, netem_available

pytestmark = pytest.mark.netns


def test_loss(lab: Lab) -> None:
    stun = lab.add_public("stun", extra_ips=1)
    host = lab.add_private("alice", NatType.PORT_RESTRICTED_CONE, loss=1.0)
    server = start_stun(lab, stun)
    target = f"{stun.ip}:3478"
    assert run_tool(lab, host, "rtt", "--server", target, "--count", "3", "--wait", "0.2")["ok"] == 0
    lab.netem(host, loss=0.5)  # each way: a round trip survives with p = 0.25
    some = run_tool(lab, host, "rtt", "--server", target, "--count", "40", "--wait", "0.03")
    lab.netem(host)  # cleared
    assert run_tool(lab, host, "rtt", "--server", target, "--count", "5", "--wait", "1")["ok"] == 5
    server.close()
    assert 1 <= some["ok"] <= 25, some  # expected 10 (sd 2.7); P(0) = 0.75**40 = 1e-5


def test_delay(lab: Lab) -> None:
    if not netem_available():
        pytest.skip("this kernel has no tc netem qdisc (CONFIG_NET_SCH_NETEM), so the lab cannot add delay")
    stun = lab.add_public("stun", extra_ips=1, delay=0.01)
    host = lab.add_private("alice", NatType.SYMMETRIC, delay=0.02)
    server = start_stun(lab, stun)
    res = run_tool(lab, host, "rtt", "--server", f"{stun.ip}:3478", "--count", "5")
    server.close()
    assert res["ok"] == 5
    assert 0.05 <= res["median"] < 0.5, res  # 2 * (10 + 20) ms = 60 ms
