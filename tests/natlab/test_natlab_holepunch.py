"""Simultaneous-open UDP holepunch between two hosts behind each pair of NAT types (no DHT involved).

Both peers register at a rendezvous on the public segment, learn each other's public endpoint as the
rendezvous saw it, and punch; a peer switches to the address the other's punches really come from (ICE
peer-reflexive), which is what lets a symmetric NAT talk to a full or restricted cone. Theory (RFC 4787;
``research/peers.md`` §3b matrix): every cone/cone pair succeeds; symmetric works only against a NAT whose
filtering does not depend on the remote port (full cone, restricted cone); symmetric/symmetric and
symmetric/port-restricted fail without port guessing.
"""

from __future__ import annotations

import itertools

import pytest
from natlab_tools import start_stun, start_tool
from tools.natlab import Host, Lab, NatType

pytestmark = pytest.mark.netns

FC, RC, PRC, SYM = NatType.FULL_CONE, NatType.RESTRICTED_CONE, NatType.PORT_RESTRICTED_CONE, NatType.SYMMETRIC
FAILS = {frozenset({SYM}), frozenset({SYM, PRC})}
PAIRS = list(itertools.combinations_with_replacement(list(NatType), 2))


def punch(lab: Lab, rdv: Host, a: Host, b: Host, secs: float) -> tuple[dict[str, object], dict[str, object]]:
    common = [
        "--rdv",
        f"{rdv.ip}:3478",
        "--room",
        f"{a.name}-{b.name}",
        "--port",
        "4000",
        "--secs",
        str(secs),
    ]
    pa = start_tool(lab, a, "punch", "--name", "a", *common)
    pb = start_tool(lab, b, "punch", "--name", "b", *common)
    ra, rb = pa.line(timeout=3 * secs + 5), pb.line(timeout=3 * secs + 5)
    pa.close()
    pb.close()
    return ra, rb


@pytest.mark.parametrize(("nat_a", "nat_b"), PAIRS, ids=lambda n: n.value)
def test_punch_pair(lab: Lab, nat_a: NatType, nat_b: NatType) -> None:
    rdv = lab.add_public("rdv", extra_ips=1)
    a = lab.add_private("a", nat_a)
    b = lab.add_private("b", nat_b)
    server = start_stun(lab, rdv)
    expect = frozenset({nat_a, nat_b}) not in FAILS
    ra, rb = punch(lab, rdv, a, b, secs=3.0 if expect else 1.5)
    server.close()
    assert ra["peer_public"] == rb["you_public"] and rb["peer_public"] == ra["you_public"]
    assert (ra["ok"], rb["ok"]) == (expect, expect), (ra, rb)
    if expect:
        assert isinstance(ra["time_s"], float) and ra["time_s"] < 2.5, ra
        if SYM in (nat_a, nat_b) and nat_a != nat_b:
            # the cone side learnt the symmetric side's new port, not the one the rendezvous saw
            cone = ra if nat_a is not SYM else rb
            assert "peer_reflexive" in cone, cone


@pytest.mark.parametrize("nat", list(NatType), ids=lambda n: n.value)
def test_punch_with_public_host(lab: Lab, nat: NatType) -> None:
    """One side on the public segment: every NAT type can reach it (the NATed side opens the way)."""
    rdv = lab.add_public("rdv", extra_ips=1)
    pub = lab.add_public("pub")
    b = lab.add_private("b", nat)
    server = start_stun(lab, rdv)
    ra, rb = punch(lab, rdv, pub, b, secs=3.0)
    server.close()
    assert ra["ok"] and rb["ok"], (ra, rb)


def test_birthday_punch_through_symmetric(lab: Lab) -> None:
    """Symmetric <-> port-restricted fails with a plain punch, but port guessing gets through.

    The hard side opens 256 mappings (random public ports), the easy side sprays up to 4096 random ports:
    P(miss) = (1 - 256/64512)**4096 < 1e-7 (research/peers.md §2, birthday arithmetic).
    """
    hard = lab.add_private("hard", SYM)
    easy = lab.add_private("easy", PRC)
    h = start_tool(lab, hard, "hard", "--easy", f"{easy.public_ip}:4000", "--n", "256", "--secs", "8")
    assert h.line()["ready"]
    res_easy = start_tool(lab, easy, "easy", "--hard-ip", hard.public_ip, "--port", "4000", "--k", "4096")
    got_easy, got_hard = res_easy.line(timeout=15), h.line(timeout=15)
    assert got_easy["ok"] and got_hard["ok"], (got_easy, got_hard)
    assert 1024 <= got_easy["hit_port"] <= 65535
