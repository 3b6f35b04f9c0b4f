"""Test helpers that ship with peerdht, for tests of sans-IO cores (no root, no sockets).

* :mod:`~peerdht.testing.fakenet`: :class:`FakeNet`, a seeded, lossy, reordering network with a fake clock;
* :mod:`~peerdht.testing.soak`: a soak by simulation (one long-lived node under synthetic load on FakeNet,
  its state measured over fake hours).

A local network of real asyncio nodes is :class:`peerdht.Testnet` / :class:`peerdht.MainlineTestnet`. The
root-only network-namespace tooling (NAT lab, delay line, attack tools) is not installed: it lives in
``tools/`` at the repository root.
"""

from peerdht.testing.fakenet import FakeNet, SansIOCore

__all__ = ["FakeNet", "SansIOCore"]
