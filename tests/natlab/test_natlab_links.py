"""Loss and delay on a host's link (nftables loss; tc netem delay, or the userspace delay line without it)."""

from __future__ import annotations

import pytest
from natlab_tools import run_tool, start_stun
from tools.natlab import Lab, NatType, netem_available

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
    stun = lab.add_public("stun", extra_ips=1, delay=0.01)
    host = lab.add_private("alice", NatType.SYMMETRIC, delay=0.02)
    server = start_stun(lab, stun)
    target = f"{stun.ip}:3478"
    res = run_tool(lab, host, "rtt", "--server", target, "--count", "5")
    print(f"RTT with 10 + 20 ms one-way: {res['median'] * 1000:.1f} ms")
    assert res["ok"] == 5
    assert 0.06 <= res["median"] < 0.2, res  # 2 * (10 + 20) ms = 60 ms
    # loss still applies to a delayed link (without netem its bridge port is a new veth of the same name)
    lab.netem(host, delay=0.02, loss=1.0)
    assert run_tool(lab, host, "rtt", "--server", target, "--count", "3", "--wait", "0.2")["ok"] == 0
    lab.netem(host)  # cleared: 2 * 10 ms left
    res = run_tool(lab, host, "rtt", "--server", target, "--count", "5", "--wait", "1")
    server.close()
    print(f"RTT with 10 ms one-way: {res['median'] * 1000:.1f} ms")
    assert res["ok"] == 5
    assert 0.02 <= res["median"] < 0.05, res
    if not netem_available():  # the router's delay line is gone and its bridge port is back; stun's stays
        links = lab.run("inet", ["ip", "-o", "link"]).stdout
        assert "d-r1" not in links and "q-r1" not in links and "p-r1@" in links, links
        assert "d-stun" in links and "q-stun" in links, links
