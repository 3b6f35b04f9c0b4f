"""HyperDHT record storage: what a persistent node answers to LOOKUP, ANNOUNCE, MUTABLE_GET, ...

Mirrors hyperdht ``lib/persistent.js`` (handlers) with the cache sizes and ages of ``index.js
defaultCacheOpts``: announce records, refreshes, bumps and router forwards live 20 minutes (65 536
entries each), mutable and immutable values 48 hours (32 768 entries each).

The store is sans-IO: :meth:`Storage.handle` takes a decoded request and returns the reply to
send (or ``None`` when hyperdht stays silent, e.g. on a bad signature: the requester times out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from peerdht.encoding.compact import Decoder, Encoder
from peerdht.errors import DecodeError
from peerdht.hyper.constants import (
    BUMP_MAX_DRIFT,
    IMMUTABLE_MAX_AGE,
    MAX_RECORDS_PER_LOOKUP,
    MAX_RELAY_ADDRESSES,
    MUTABLE_MAX_AGE,
    RECORD_CACHE_MAX_SIZE,
    RECORD_MAX_AGE,
    Command,
    Error,
)
from peerdht.hyper.crypto import hash as blake2b
from peerdht.hyper.crypto import verify_announce, verify_mutable
from peerdht.hyper.records import (
    Announce,
    LookupReply,
    MutableGetResponse,
    Peer,
    decode_announce,
    decode_mutable_get_response,
    decode_mutable_put_request,
    decode_peer,
    encode_lookup_reply,
    encode_mutable_get_response,
    encode_peer,
)
from peerdht.kademlia.store import ExpiringCache

__all__ = ["STORAGE_COMMANDS", "Forward", "Reply", "Storage", "encode_seq"]

if TYPE_CHECKING:
    import random

Address = tuple[str, int]

STORAGE_COMMANDS = frozenset(
    {
        Command.FIND_PEER,
        Command.LOOKUP,
        Command.ANNOUNCE,
        Command.UNANNOUNCE,
        Command.MUTABLE_PUT,
        Command.MUTABLE_GET,
        Command.IMMUTABLE_PUT,
        Command.IMMUTABLE_GET,
    }
)
"""Commands served by :class:`Storage` (PLUGIN is not supported: answered UNKNOWN_COMMAND)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    """What to answer (``persistent.js``: ``req.reply(value, opts)`` / ``req.error(code)``).

    Attributes:
        value: reply payload or ``None``.
        error: 0, or an error code (16 SEQ_REUSED, 17 SEQ_TOO_LOW).
        token: include a fresh write token.
        closer_nodes: include the closest nodes to the target.
    """

    value: bytes | None = None
    error: int = 0
    token: bool = True
    closer_nodes: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class Forward:
    """A server's self-announce kept in the router (``lib/router.js`` forwards).

    Attributes:
        relay: the address the announce came from (where handshakes are forwarded).
        record: the encoded ``peer`` (public key + relay addresses).
    """

    relay: Address
    record: bytes


class _RecordStore:
    """Announce records: per topic, per public key, the encoded peer (``record-cache``)."""

    def __init__(self, *, max_size: int, max_age: float) -> None:
        self._all: ExpiringCache[tuple[bytes, bytes], bytes] = ExpiringCache(
            max_size=max_size, max_age=max_age
        )
        self._topics: dict[bytes, dict[bytes, None]] = {}
        self._indexed = 0

    def add(self, topic: bytes, public_key: bytes, record: bytes, now: float) -> None:
        self._all.put((topic, public_key), record, now)
        keys = self._topics.setdefault(topic, {})
        if public_key not in keys:
            keys[public_key] = None
            self._indexed += 1
        if self._indexed != len(self._all):
            self._sync()

    def remove(self, topic: bytes, public_key: bytes) -> None:
        self._all.delete((topic, public_key))
        keys = self._topics.get(topic)
        if keys is not None and public_key in keys:
            del keys[public_key]
            self._indexed -= 1
            if not keys:
                del self._topics[topic]

    def get(self, topic: bytes, n: int, now: float, rng: random.Random) -> list[bytes]:
        keys = self._topics.get(topic)
        if not keys:
            return []
        out: list[bytes] = []
        for pk in list(keys):
            rec = self._all.get((topic, pk), now)
            if rec is None:
                self.remove(topic, pk)
            else:
                out.append(rec)
        if len(out) > n:
            return rng.sample(out, n)
        rng.shuffle(out)
        return out

    def prune(self, now: float) -> None:
        if self._all.prune(now):
            self._sync()

    def _sync(self) -> None:
        """Drop index entries whose record the cache evicted or expired."""
        for topic in list(self._topics):
            keys = self._topics[topic]
            for pk in [pk for pk in keys if (topic, pk) not in self._all]:
                del keys[pk]
            if not keys:
                del self._topics[topic]
        self._indexed = sum(len(v) for v in self._topics.values())

    def __len__(self) -> int:
        return len(self._all)


@dataclass(frozen=True, slots=True)
class _Refresh:
    topic: bytes
    record: bytes
    announce_self: bool


class Storage:
    """The record store of one persistent HyperDHT node (``lib/persistent.js``).

    Args:
        rng: random source (LOOKUP returns a random sample of at most 20 records).
        max_size: entries per cache (``index.js`` ``maxSize``, default 65 536; the mutable and
            immutable caches get half).
        max_age: seconds records, refreshes, bumps and forwards live (default 20 min).
        value_max_age: seconds mutable and immutable values live (default 48 h).
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        max_size: int = RECORD_CACHE_MAX_SIZE,
        max_age: float = RECORD_MAX_AGE,
        value_max_age: float | None = None,
    ) -> None:
        self._rng = rng
        self.records = _RecordStore(max_size=max_size, max_age=max_age)
        self.router: ExpiringCache[bytes, Forward] = ExpiringCache(max_size=max_size, max_age=max_age)
        self.bumps: ExpiringCache[bytes, int] = ExpiringCache(max_size=max_size, max_age=max_age)
        self.refreshes: ExpiringCache[bytes, _Refresh] = ExpiringCache(max_size=max_size, max_age=max_age)
        self.mutables: ExpiringCache[bytes, bytes] = ExpiringCache(
            max_size=max_size // 2, max_age=value_max_age if value_max_age is not None else MUTABLE_MAX_AGE
        )
        self.immutables: ExpiringCache[bytes, bytes] = ExpiringCache(
            max_size=max_size // 2, max_age=value_max_age if value_max_age is not None else IMMUTABLE_MAX_AGE
        )
        self.wall_clock_offset: float | None = None
        """Seconds to add to ``now`` to get Unix time; when set, announce ``bump`` values more than
        60 s in the future are ignored (``persistent.js MAX_BUMP_DRIFT``). ``None``: no drift check."""

    # -- dispatch ---------------------------------------------------------------------------

    def handle(
        self,
        command: int,
        *,
        target: bytes | None,
        token: bytes | None,
        value: bytes | None,
        from_addr: Address,
        node_id: bytes,
        now: float,
    ) -> Reply | None:
        """Serve one storage command.

        The token, if present, has already been checked by the node (an invalid token never
        reaches here: the node answers INVALID_TOKEN, as ``lib/io.js`` does).

        Args:
            command: one of :data:`STORAGE_COMMANDS`.
            target: the request's 32-byte target, or ``None``.
            token: the request's (valid) write token, or ``None``.
            value: the request's payload, or ``None``.
            from_addr: the requester's address (a self-announce's relay address).
            node_id: our node id (announce signatures are bound to it), 32 bytes.
            now: current time (seconds).

        Returns:
            The reply, or ``None`` to stay silent (malformed or unauthenticated request).
        """
        if target is None:
            return None
        if command == Command.LOOKUP:
            return self._on_lookup(target, now)
        if command == Command.FIND_PEER:
            fwd = self.router.get(target, now)
            return Reply(value=fwd.record if fwd is not None else None)
        if command == Command.ANNOUNCE:
            return self._on_announce(target, token, value, from_addr, node_id, now)
        if command == Command.UNANNOUNCE:
            return self._on_unannounce(target, token, value, node_id)
        if command == Command.MUTABLE_GET:
            return self._on_mutable_get(target, value, now)
        if command == Command.MUTABLE_PUT:
            return self._on_mutable_put(target, token, value, now)
        if command == Command.IMMUTABLE_GET:
            return Reply(value=self.immutables.get(target, now))
        if command == Command.IMMUTABLE_PUT:
            if token is None or not value or blake2b(value) != target:
                return None
            self.immutables.put(target, bytes(value), now)
            return Reply()
        return None

    def prune(self, now: float) -> None:
        """Drop expired entries of every cache (call now and then, e.g. on the node's tick)."""
        self.records.prune(now)
        for cache in (self.router, self.bumps, self.refreshes, self.mutables, self.immutables):
            cache.prune(now)

    # -- handlers ---------------------------------------------------------------------------

    def _on_lookup(self, target: bytes, now: float) -> Reply:
        records = self.records.get(target, MAX_RECORDS_PER_LOOKUP, now, self._rng)
        fwd = self.router.get(target, now)
        if fwd is not None and len(records) < MAX_RECORDS_PER_LOOKUP:
            records.append(fwd.record)
        if not records:
            return Reply(value=None)
        bump = self.bumps.get(target, now) or 0
        peers = tuple(decode_peer(r) for r in records)
        return Reply(value=encode_lookup_reply(LookupReply(peers=peers, bump=bump)))

    def _on_announce(
        self,
        target: bytes,
        token: bytes | None,
        value: bytes | None,
        from_addr: Address,
        node_id: bytes,
        now: float,
    ) -> Reply | None:
        if token is None or value is None:
            return None
        ann = _decode_announce(value)
        if ann is None:
            return None
        if ann.peer is None:
            if ann.refresh is None:
                return None
            return self._on_refresh(ann.refresh, from_addr, now)
        if ann.signature is None or not verify_announce(
            ann.signature, target, node_id, token, ann.peer, ann.refresh
        ):
            return None
        peer = ann.peer
        if len(peer.relay_addresses) > MAX_RELAY_ADDRESSES:
            peer = Peer(
                public_key=peer.public_key, relay_addresses=peer.relay_addresses[:MAX_RELAY_ADDRESSES]
            )
        record = encode_peer(peer)
        announce_self = blake2b(peer.public_key) == target
        if announce_self:
            self.router.put(target, Forward(relay=from_addr, record=record), now)
            self.records.remove(target, peer.public_key)
        else:
            current = self.bumps.get(target, now) or 0
            if ann.bump > current and self._bump_ok(ann.bump, now):
                self.bumps.put(target, ann.bump, now)
            self.records.add(target, peer.public_key, record, now)
        if ann.refresh is not None:
            self.refreshes.put(ann.refresh, _Refresh(target, record, announce_self), now)
        return Reply(token=False, closer_nodes=False)

    def _bump_ok(self, bump: int, now: float) -> bool:
        if self.wall_clock_offset is None:
            return True
        return bump <= (now + self.wall_clock_offset + BUMP_MAX_DRIFT) * 1000

    def _on_refresh(self, refresh: bytes, from_addr: Address, now: float) -> Reply | None:
        # persistent.js _onrefresh: the announce carried the preimage of a stored refresh hash
        active = blake2b(refresh)
        r = self.refreshes.get(active, now)
        if r is None:
            return None
        public_key = r.record[:32]
        if r.announce_self:
            self.router.put(r.topic, Forward(relay=from_addr, record=r.record), now)
            self.records.remove(r.topic, public_key)
        else:
            self.records.add(r.topic, public_key, r.record, now)
        self.refreshes.delete(active)
        self.refreshes.put(refresh, r, now)
        return Reply(token=False, closer_nodes=False)

    def _on_unannounce(
        self, target: bytes, token: bytes | None, value: bytes | None, node_id: bytes
    ) -> Reply | None:
        if token is None or value is None:
            return None
        ann = _decode_announce(value)
        if ann is None or ann.peer is None or ann.signature is None:
            return None
        if not verify_announce(ann.signature, target, node_id, token, ann.peer, ann.refresh, unannounce=True):
            return None
        self.unannounce(target, ann.peer.public_key)
        return Reply(token=False, closer_nodes=False)

    def unannounce(self, target: bytes, public_key: bytes) -> None:
        """Forget ``public_key``'s record under ``target`` (and the router entry of a self-announce)."""
        if blake2b(public_key) == target:
            self.router.delete(target)
        self.records.remove(target, public_key)

    def _on_mutable_get(self, target: bytes, value: bytes | None, now: float) -> Reply | None:
        if value is None:
            return None
        try:
            seq = Decoder(value).uint()
        except DecodeError:
            return None
        stored = self.mutables.get(target, now)
        if stored is None:
            return Reply(value=None)
        local_seq = Decoder(stored).uint()
        return Reply(value=None if local_seq < seq else stored)

    def _on_mutable_put(
        self, target: bytes, token: bytes | None, value: bytes | None, now: float
    ) -> Reply | None:
        if token is None or value is None:
            return None
        try:
            put = decode_mutable_put_request(value)
        except DecodeError:
            return None
        if blake2b(put.public_key) != target:
            return None
        if not put.value or not verify_mutable(put.signature, put.seq, put.value, put.public_key):
            return None
        stored = self.mutables.get(target, now)
        if stored is not None:
            existing = decode_mutable_get_response(stored)
            if existing.value and existing.seq == put.seq and existing.value != put.value:
                return Reply(error=Error.SEQ_REUSED, token=False)
            if put.seq < existing.seq:
                return Reply(error=Error.SEQ_TOO_LOW, token=False)
        self.mutables.put(
            target,
            encode_mutable_get_response(
                MutableGetResponse(seq=put.seq, value=put.value, signature=put.signature)
            ),
            now,
        )
        return Reply()


def _decode_announce(value: bytes) -> Announce | None:
    try:
        return decode_announce(value)
    except DecodeError:
        return None


def encode_seq(seq: int) -> bytes:
    """``c.encode(c.uint, seq)``: the MUTABLE_GET request value."""
    enc = Encoder()
    enc.uint(seq)
    return enc.getvalue()
