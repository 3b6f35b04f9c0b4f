"""The flat public API (issue 12 items 12-14): ``from peerdht import ...``, one error tree whose errors are
also the standard exceptions where the meaning is standard, ``close()`` on every node, ``lookup_peers``."""

from __future__ import annotations

import subprocess
import sys

import pytest

import peerdht
from peerdht import errors


def test_flat_imports() -> None:
    from peerdht import (
        ConnectError,
        HyperDHT,
        KeyPair,
        MainlineDHT,
        MainlineTestnet,
        PeerDHTError,
        RelayAborted,
        RequestTimeout,
        Testnet,
    )

    assert HyperDHT.__module__ == "peerdht.aio.hyperdht.dht"
    assert MainlineDHT.__module__ == MainlineTestnet.__module__ == "peerdht.aio.mainline"
    assert Testnet.__module__ == "peerdht.aio.hyperdht.testnet"
    assert KeyPair.from_seed(bytes(32)).public_key.hex().startswith("3b6a27bc")
    assert issubclass(ConnectError, PeerDHTError) and issubclass(RelayAborted, PeerDHTError)
    assert issubclass(RequestTimeout, PeerDHTError)
    for name in peerdht.__all__:
        assert getattr(peerdht, name) is not None, name
    with pytest.raises(AttributeError):
        _ = peerdht.no_such_name  # type: ignore[attr-defined]


def test_import_peerdht_is_cheap() -> None:
    code = "import sys, peerdht; print('peerdht.aio.hyperdht' in sys.modules, 'asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_one_error_tree() -> None:
    from peerdht.aio.hyperdht import relay
    from peerdht.hyper import handshake
    from peerdht.relay import pairing

    # the old homes re-export the same classes: one class per name
    assert handshake.ConnectError is errors.ConnectError
    assert handshake.PeerNotFound is errors.PeerNotFound
    assert relay.RelayAborted is errors.RelayAborted
    assert pairing.PairingError is errors.PairingError  # type: ignore[attr-defined]
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.PeerDHTError), name
    # standard meanings are standard exceptions too
    assert issubclass(errors.RequestTimeout, TimeoutError)
    assert issubclass(errors.InvalidArgument, ValueError)
    assert issubclass(errors.InvalidArgumentType, TypeError)
    assert issubclass(errors.DecodeError, ValueError)
    # the payload error enum no longer shares the exception's name
    from peerdht.hyper import constants

    assert "ConnectError" not in constants.__all__
    with pytest.warns(DeprecationWarning):
        assert constants.ConnectError is constants.PayloadErrorCode  # type: ignore[attr-defined]


async def test_bad_topic_is_value_or_type_error() -> None:
    from peerdht import HyperDHT, KeyPair, MainlineDHT

    async with HyperDHT(host="127.0.0.1") as dht:
        with pytest.raises(ValueError, match="32 bytes"):
            await dht.announce(b"short", KeyPair.generate())
        with pytest.raises(TypeError, match="bytes, not str"):
            await dht.announce("a topic", KeyPair.generate())  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            async for _ in dht.lookup_peers(b"x" * 31):
                pass
        with pytest.raises(errors.LocalProtocolError):  # still our own error too
            await dht.immutable_get(b"x")
    async with MainlineDHT(host="127.0.0.1") as ml:
        with pytest.raises(ValueError, match="20 bytes"):
            async for _ in ml.get_peers(b"short"):
                pass
        with pytest.raises(TypeError):
            await ml.announce_peer("0" * 20, 6881)  # type: ignore[arg-type]


async def test_request_timeout_is_a_timeout_error() -> None:
    import socket

    from peerdht import HyperDHT

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        async with HyperDHT(host="127.0.0.1") as dht:
            with pytest.raises(TimeoutError):
                await dht.ping(silent.getsockname())
    finally:
        silent.close()


async def test_close_on_every_node_and_testnet() -> None:
    from peerdht import HyperDHT, MainlineDHT, MainlineTestnet, Testnet

    for cls in (HyperDHT, MainlineDHT, Testnet, MainlineTestnet):
        assert callable(cls.close) and callable(cls.destroy), cls
    testnet = await Testnet.create(3)
    node = testnet.node()
    await node.open()
    await node.close()
    await node.destroy()  # idempotent, the JS name
    await testnet.close()
    mtn = await MainlineTestnet.create(2)
    await mtn.destroy()


async def test_lookup_peers_yields_each_peer_once() -> None:
    from peerdht import HyperDHT, KeyPair, Testnet

    async with await Testnet.create(8) as testnet, testnet.node() as alice, testnet.node() as bob:
        await alice.fully_bootstrapped()
        await bob.fully_bootstrapped()
        topic = HyperDHT.hash(b"lookup_peers topic")
        one, two = KeyPair.generate(), KeyPair.generate()
        assert await alice.announce(topic, one) >= 2
        assert await alice.announce(topic, two) >= 2
        replies = [r async for r in bob.lookup(topic)]
        assert sum(len(r.peers) for r in replies) > 2  # every storing node answers: duplicates
        peers = [p async for p in bob.lookup_peers(topic)]
        assert sorted(p.public_key for p in peers) == sorted([one.public_key, two.public_key])
