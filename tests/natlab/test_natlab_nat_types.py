"""Each NAT type behaves as its name says: mapping and filtering (RFC 4787 terms), checked from inside the lab."""

from __future__ import annotations

import pytest
from natlab_tools import run_tool, start_stun, start_tool
from tools.natlab import Lab, NatType

pytestmark = pytest.mark.netns

PRC, FULL = NatType.PORT_RESTRICTED_CONE, NatType.FULL_CONE

# (mapping, from the contacted ip:port, from another port of that IP, from another IP)
EXPECTED = {
    NatType.FULL_CONE: ("endpoint-independent", True, True, True),
    NatType.RESTRICTED_CONE: ("endpoint-independent", True, True, False),
    NatType.PORT_RESTRICTED_CONE: ("endpoint-independent", True, False, False),
    NatType.SYMMETRIC: ("address-and-port-dependent", True, False, False),
}


@pytest.mark.parametrize("nat", list(NatType), ids=lambda n: n.value)
def test_mapping_and_filtering(lab: Lab, nat: NatType) -> None:
    """Classify the NAT from two hosts behind one router at once (each must see the type's behaviour)."""
    stun = lab.add_public("stun", extra_ips=1)
    first = lab.add_private("first", nat)
    second = lab.add_private("second", behind=first)
    assert second.public_ip == first.public_ip and second.nat is nat and second.ip != first.ip
    server = start_stun(lab, stun)
    checks = [
        start_tool(lab, host, "natcheck", "--server", stun.ip, "--other-ip", stun.extra_ips[0])
        for host in (first, second)
    ]  # at the same time, so both hosts' mappings live in the router together
    results = [check.line(timeout=20) for check in checks]
    server.close()
    mapping, same, other_port, other_ip = EXPECTED[nat]
    for res in results:
        assert res["mapping"] == mapping, res
        assert (res["from_same"], res["from_other_port"], res["from_other_ip"]) == (
            same,
            other_port,
            other_ip,
        )
        # nothing gets in to a port the host never sent from, whatever the type
        assert res["unsolicited"] is False, res
        # the server sees the router's WAN address, never the private one
        assert all(m[0] == first.public_ip for m in res["mapped"]), res
        if nat is NatType.SYMMETRIC:
            assert len({m[1] for m in res["mapped"]}) == 3, res  # a new random port per destination
        else:
            assert res["port_preserved"], res  # distinct local ports: masquerade keeps them


def test_lan_neighbours_talk_directly(lab: Lab) -> None:
    first = lab.add_private("first", NatType.SYMMETRIC)
    second = lab.add_private("second", behind=first)
    lan_server = start_stun(lab, first)
    res = run_tool(lab, second, "ask", "--server", f"{first.ip}:3478")
    lan_server.close()
    assert res["mapped"] == [second.ip, res["local_port"]]  # no NAT between LAN neighbours


def test_input_drop_rule_prevents_port_clash(lab: Lab) -> None:
    """research/peers.md §3b: an early unsolicited packet must not make a cone NAT pick a new port."""
    peer = lab.add_public("peer")
    good = lab.add_private("good", NatType.PORT_RESTRICTED_CONE)
    bad = lab.add_private("bad", NatType.PORT_RESTRICTED_CONE, input_drop=False)
    assert 'iifname "wan" meta l4proto udp drop' in lab.ruleset(good)
    # the peer "punches" first, from the port it will later answer on, before either host sent anything
    for host in (good, bad):
        run_tool(lab, peer, "send", "--bind", f"{peer.ip}:5000", "--to", f"{host.public_ip}:4000")
    server = start_stun(lab, peer, ports=(5000, 5001))
    res_good = run_tool(lab, good, "ask", "--port", "4000", "--server", f"{peer.ip}:5000")
    res_bad = run_tool(lab, bad, "ask", "--port", "4000", "--server", f"{peer.ip}:5000")
    server.close()
    assert res_good["mapped"] == [good.public_ip, 4000], res_good
    # without the rule the router's own conntrack entry holds the tuple and masquerade moves the port
    assert res_bad["mapped"] is not None and res_bad["mapped"][1] != 4000, res_bad


def test_conntrack_timeouts_default_and_configured(lab: Lab) -> None:
    """Linux: 30 s for unreplied UDP flows, 120 s once replied; per router namespace."""
    default = lab.add_private("dflt", NatType.PORT_RESTRICTED_CONE)
    short = lab.add_private("short", NatType.PORT_RESTRICTED_CONE, udp_timeout=2)
    assert lab.udp_timeouts(default) == (30, 120)
    assert lab.udp_timeouts(short) == (2, 2)


def test_mapping_expires(lab: Lab) -> None:
    """An idle mapping dies after the UDP timeout (1 s here instead of Linux's 30 s): keep-alives must beat it.

    The server answers a request only after a pause with no traffic: 0.2 s gets through, 2.2 s does not.
    """
    stun = lab.add_public("stun", extra_ips=1)
    hosts = [lab.add_private(name, nat, udp_timeout=1) for name, nat in (("prc", PRC), ("full", FULL))]
    server = start_stun(lab, stun)
    target = f"{stun.ip}:3478"
    procs = {
        (host.name, delay): start_tool(lab, host, "expiry", "--server", target, "--delay", delay)
        for host in hosts
        for delay in ("0.2", "2.2")
    }
    got = {key: proc.line(timeout=10)["got"] for key, proc in procs.items()}
    server.close()
    assert got == {("prc", "0.2"): True, ("prc", "2.2"): False, ("full", "0.2"): True, ("full", "2.2"): False}


def test_behind_checks(lab: Lab) -> None:
    first = lab.add_private("first", NatType.SYMMETRIC)
    with pytest.raises(ValueError):
        lab.add_private("second", NatType.FULL_CONE, behind=first)
    with pytest.raises(ValueError):
        lab.add_private("third", behind="nobody")
    with pytest.raises(ValueError):
        lab.add_private("fourth", behind=first, loss=0.1)
    with pytest.raises(ValueError):
        lab.add_private("fifth")
