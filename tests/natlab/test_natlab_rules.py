"""Pure checks of the lab's rule text and availability probe (no root needed, no namespaces made)."""

from __future__ import annotations

import pytest
from tools import natlab
from tools.natlab import NatType


def _rules(nat: NatType, **kw: object) -> str:
    router = natlab._Router(
        netns="x",
        index=1,
        wan_ip="203.0.113.201",
        lan_prefix="10.0.1",
        hosts=["alice"],
        nat=nat,
        udp_timeout=kw.get("udp_timeout"),  # type: ignore[arg-type]
        bridge_port="p-r1",
        input_drop=bool(kw.get("input_drop", True)),
    )
    return natlab._nft_ruleset(router)


@pytest.mark.parametrize("nat", list(NatType), ids=lambda n: n.value)
def test_every_type_has_the_input_drop_rule(nat: NatType) -> None:
    assert 'iifname "wan" meta l4proto udp drop' in _rules(nat)
    assert "drop" not in _rules(nat, input_drop=False)


def test_rules_per_type() -> None:
    assert "masquerade fully-random" in _rules(NatType.SYMMETRIC)
    assert "dnat" not in _rules(NatType.SYMMETRIC)
    assert "dnat" not in _rules(NatType.PORT_RESTRICTED_CONE)
    assert "fully-random" not in _rules(NatType.PORT_RESTRICTED_CONE)
    assert 'iifname "wan" meta l4proto udp dnat ip addr . port to udp dport map @fc' in _rules(
        NatType.FULL_CONE
    )
    assert "ip saddr . udp dport @c_a dnat ip addr . port to udp dport map @fc" in _rules(
        NatType.RESTRICTED_CONE
    )
    assert "timeout 120s" in _rules(NatType.FULL_CONE)
    assert "timeout 2s" in _rules(NatType.FULL_CONE, udp_timeout=2)


def test_not_root_gives_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    reason = natlab.unavailable_reason()
    assert reason is not None and "root" in reason


def test_nat_type_values() -> None:
    assert NatType("symmetric") is NatType.SYMMETRIC
    with pytest.raises(ValueError):
        NatType("cgnat")
