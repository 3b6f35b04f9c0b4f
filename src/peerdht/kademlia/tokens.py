"""Write tokens from two rotating secrets (BEP 5 tokens; dht-rpc ``lib/io.js`` ``token()``).

A node hands a token to whoever asks (a ``get_peers`` reply, a dht-rpc reply with ``token``)
and later accepts a write (``announce_peer``, dht-rpc requests carrying ``token``) only if the
token was derived from the writer's IP address with the current or the previous secret.
BEP 5: SHA1(IP + secret), secret changed every five minutes, tokens up to ten minutes old
accepted. dht-rpc: BLAKE2b-256 of the host string keyed with the secret, rotated every 10 drain
ticks (7.5 s). The derivation is injected so both profiles share the rotation logic.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from peerdht.errors import LocalProtocolError

__all__ = ["TokenIssuer"]


class TokenIssuer:
    """Issues and checks write tokens.

    Args:
        derive: ``derive(secret, ip) -> token``; ``ip`` is whatever bytes the profile binds
            tokens to (BEP 5: the packed IP; dht-rpc: the host string as UTF-8).
        secrets: ``(current, previous)`` initial secrets (random bytes from the I/O layer).
        rotate_every: seconds between rotations (BEP 5: 300; dht-rpc: 7.5).

    The rotation clock starts at the first :meth:`due` call (or the ``now`` given to
    :meth:`rotate`). Secrets are never shown in ``repr``.
    """

    __slots__ = ("_current", "_derive", "_last", "_last_due", "_previous", "rotate_every")

    def __init__(
        self,
        derive: Callable[[bytes, bytes], bytes],
        secrets: tuple[bytes, bytes],
        *,
        rotate_every: float,
    ) -> None:
        if rotate_every <= 0:
            raise LocalProtocolError("rotate_every must be > 0 seconds")
        self._derive = derive
        self._current, self._previous = secrets
        self.rotate_every = rotate_every
        self._last: float | None = None
        self._last_due: float | None = None

    def rotate(self, fresh_secret: bytes, *, now: float | None = None) -> None:
        """Start using ``fresh_secret``; the current secret becomes the previous one.

        Args:
            fresh_secret: new random bytes.
            now: the rotation time (seconds); default: the ``now`` of the latest :meth:`due`.
        """
        self._previous = self._current
        self._current = fresh_secret
        when = now if now is not None else self._last_due
        if when is not None:
            self._last = when

    def due(self, now: float) -> bool:
        """True if ``rotate_every`` seconds have passed since the last rotation (or the first call)."""
        self._last_due = now
        if self._last is None:
            self._last = now
            return False
        return now - self._last >= self.rotate_every

    def next_rotation(self) -> float | None:
        """When (seconds) the next rotation is due, or ``None`` before the clock started."""
        return None if self._last is None else self._last + self.rotate_every

    def issue(self, ip: bytes) -> bytes:
        """The token for ``ip`` under the current secret."""
        return self._derive(self._current, ip)

    def check(self, ip: bytes, token: bytes) -> bool:
        """True if ``token`` was issued for ``ip`` under the current or previous secret
        (constant-time comparisons; untrusted ``token`` of any length is fine)."""
        ok_current = hmac.compare_digest(self._derive(self._current, ip), token)
        ok_previous = hmac.compare_digest(self._derive(self._previous, ip), token)
        return ok_current or ok_previous

    def __repr__(self) -> str:
        return f"<TokenIssuer rotate_every={self.rotate_every}s secrets=<redacted>>"
