"""The address fast paths of the cores give exactly what the parsers they stand in for give.

``mainline.core._is_v6`` answers a ``str`` without ``':'`` without parsing; ``encoding.compact`` validates
and converts dotted quads with fixed tables instead of ``split``/``isdigit``/``int`` (and keeps its memo).
Each is compared here with the code it replaced (kept below, unmemoised, as the reference) on IPv4 and
IPv6 literals, the web overlay's link handles (``"web:N"``) and arbitrary text and objects, memo cold and
warm. See docs/performance.md section 1 for why (the memos overflow in networks above 16,384 addresses).
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from peerdht.encoding import compact
from peerdht.encoding.compact import decode_ipv4_address, encode_ipv4_address, encode_ipv4_list
from peerdht.errors import LocalProtocolError
from peerdht.hyper.crypto import node_id
from peerdht.hyper.rpc_util import cached_node_id
from peerdht.mainline.core import _is_v6


def _old_is_v6(host: object) -> bool:
    """``mainline/core.py``'s ``_is_v6`` before the fast path (without its lru_cache)."""
    try:
        return ipaddress.ip_address(host).version == 6  # type: ignore[arg-type]
    except ValueError:
        return False


def _old_ipv4_bytes(host: object) -> bytes:
    """``encoding/compact.py``'s ``_ipv4_bytes`` before the lookup table."""
    parts = host.split(".") if isinstance(host, str) else []
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() and len(p) <= 3 for p in parts):
        raise LocalProtocolError(f"not an IPv4 address: {host!r}")
    values = [int(p) for p in parts]
    if any(v > 255 for v in values):
        raise LocalProtocolError(f"not an IPv4 address: {host!r}")
    return bytes(values)


def _old_encode(host: object, port: object) -> bytes:
    """``encode_ipv4_address`` before (its checks, in its order, without the memo)."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 0xFFFF:
        raise LocalProtocolError(f"port must be an int in [0, 65535], got {port!r}")
    return _old_ipv4_bytes(host) + struct.pack("<H", port)


def _outcome(f: object, *args: object) -> tuple[str, object]:
    try:
        return ("value", f(*args))  # type: ignore[operator]
    except Exception as e:  # the exception type and message are what is compared
        return (type(e).__name__, str(e))


def _clear_memos() -> None:
    compact._IPV4_ENC.clear()
    compact._IPV4_DEC.clear()


# text that looks like addresses: digits, dots, colons, hex, scope and prefix marks, signs, spaces,
# underscores, non-ASCII digits (Arabic-Indic three, superscript two, fullwidth one)
_ADDRESSY = st.text(alphabet="0123456789.:abcdefABCDEF%/+- _\u0663\u00b2\uff11web", max_size=45)
_DOTTED = st.lists(
    st.one_of(
        st.integers(0, 999).map(str),
        st.integers(0, 255).map(lambda v: f"{v:03d}"),
        st.integers(0, 99).map(lambda v: f"{v:02d}"),
        st.text(alphabet="0123456789 +-_\u0663\u00b2\uff11x", max_size=5),
    ),
    min_size=1,
    max_size=6,
).map(".".join)
_HOSTS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.ip_addresses(v=6).map(lambda a: a.exploded),
    st.integers(0, 10**6).map(lambda i: f"web:{i}"),
    _DOTTED,
    _ADDRESSY,
    st.text(max_size=20),
)


@given(
    st.one_of(
        _HOSTS,
        st.ip_addresses(v=6).map(lambda a: f"{a}%eth0"),
        st.integers(-1, 2**130),
        st.binary(min_size=0, max_size=17),
        st.none(),
        st.ip_addresses(),
    )
)
@example("::1")
@example("::ffff:1.2.3.4")
@example("fe80::1%eth0")
@example("web:12")
@example("web:")
@example("1.2.3.4")
@example("")
@example(":")
@example(2**32 + 1)
@example(b"\x00" * 16)
def test_is_v6_equals_ipaddress(host: object) -> None:
    expected = _outcome(_old_is_v6, host)
    assert _outcome(_is_v6, host) == expected
    assert _outcome(_is_v6, host) == expected  # memoised (if it went to the parser at all)


def test_is_v6_str_subclass_goes_to_the_parser() -> None:
    class Host(str):
        pass

    assert _is_v6(Host("::1")) is True
    assert _is_v6(Host("1.2.3.4")) is False


@given(
    st.one_of(_HOSTS, st.none(), st.integers(), st.binary(max_size=8)),
    st.one_of(st.integers(-2, 70000), st.booleans(), st.just(1.0), st.none()),
)
@example("1.2.3.4", 0x1234)
@example("001.02.3.255", 65535)
@example("1.2.3.256", 1)
@example("1.2.3.4", True)
@example(" 1.2.3.4", 1)
@example("1.2.3.+4", 1)
@example("1.2.3.\u0663", 1)
@example("1.2.3.0004", 1)
@example("1.2.3", 1)
def test_encode_ipv4_address_equals_old(host: object, port: object) -> None:
    expected = _outcome(_old_encode, host, port)
    _clear_memos()
    assert _outcome(encode_ipv4_address, host, port) == expected  # cold
    assert _outcome(encode_ipv4_address, host, port) == expected  # memoised
    if expected[0] == "value":
        assert encode_ipv4_list([(host, port), (host, port)]) == expected[1] * 2  # type: ignore[list-item, operator]
        assert cached_node_id(host, port) == node_id(host, port)  # type: ignore[arg-type]


@given(st.binary(min_size=6, max_size=6))
def test_decode_ipv4_address_equals_old(b: bytes) -> None:
    expected = (f"{b[0]}.{b[1]}.{b[2]}.{b[3]}", b[4] | (b[5] << 8))
    _clear_memos()
    assert decode_ipv4_address(b) == expected
    assert decode_ipv4_address(b) == expected
    assert encode_ipv4_address(*expected) == b


def test_decode_after_the_memo_fills() -> None:
    _clear_memos()
    for i in range(compact._CACHE_MAX + 10):
        b = struct.pack("<IH", i, i & 0xFFFF)
        assert decode_ipv4_address(b) == (f"{b[0]}.{b[1]}.{b[2]}.{b[3]}", b[4] | (b[5] << 8))
    assert len(compact._IPV4_DEC) <= compact._CACHE_MAX


@pytest.mark.parametrize(
    "part", ["256", "0256", "-1", "+1", "1_0", " 1", "1 ", "", "\u0663", "\u00b2", "0x1"]
)
def test_bad_parts_rejected(part: str) -> None:
    _clear_memos()
    with pytest.raises(LocalProtocolError, match="not an IPv4 address"):
        encode_ipv4_address(f"1.2.3.{part}", 1)
