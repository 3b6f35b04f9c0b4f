"""A real HyperDHT testnet on the lab's public segment, used from hosts behind NATs."""

from __future__ import annotations

import json
import sys

import pytest
from natlab_tools import start_testnet
from tools.natlab import Lab, NatType

pytestmark = pytest.mark.netns


def test_immutable_put_get_across_nats(lab: Lab) -> None:
    boot = lab.add_public("boot")
    alice = lab.add_private("alice", NatType.PORT_RESTRICTED_CONE)
    bob = lab.add_private("bob", NatType.SYMMETRIC)
    testnet, bootstrap = start_testnet(lab, boot, size=3)
    assert bootstrap and all(addr.startswith(f"{boot.ip}:") for addr in bootstrap)
    dht = [sys.executable, "-m", "peerdht"]
    args = [arg for addr in bootstrap for arg in ("--bootstrap", addr)]
    value = "hello from behind a port-restricted NAT"
    put = lab.run(alice, [*dht, "immutable-put", *args, "--json", value], timeout=30)
    digest = json.loads(put.stdout.strip().splitlines()[-1])["hash"]
    got = lab.run(bob, [*dht, "immutable-get", *args, "--json", digest], timeout=30)
    assert json.loads(got.stdout.strip().splitlines()[-1])["value"] == value
    testnet.close(interrupt=True)
    assert testnet.proc.returncode is not None
