"""Test helpers that ship with peerdht: a seeded chaos network for sans-IO cores (:mod:`.fakenet`)."""

from peerdht.testing.fakenet import FakeNet, SansIOCore

__all__ = ["FakeNet", "SansIOCore"]
