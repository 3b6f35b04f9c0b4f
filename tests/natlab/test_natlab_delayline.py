"""The userspace delay line (:mod:`tools.delayline`): A -veth- D -veth- B, the line running in D."""

from __future__ import annotations

import json
import random
import struct
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from natlab_tools import PY, UDP_TOOL, LineProc
from tools.delayline import DelayLineError, split_udp_gso, start_delay_line
from tools.natlab import Lab

IPS = ("10.77.0.1", "10.77.0.2")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@pytest.fixture
def wire(lab: Lab) -> Iterator[tuple[str, str, str]]:
    """Namespaces (A, D, B) named after the lab (so its teardown deletes them and kills what runs there)."""
    a, d, b = (f"{lab.id}-{role}" for role in ("wa", "wd", "wb"))
    for ns in (a, d, b):
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    _ip("link", "add", "eth0", "netns", a, "type", "veth", "peer", "name", "da", "netns", d)
    _ip("link", "add", "eth0", "netns", b, "type", "veth", "peer", "name", "db", "netns", d)
    for ns, addr in ((a, IPS[0]), (b, IPS[1])):
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
    yield a, d, b


def _echo(ns: str) -> LineProc:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, PY, "-u", UDP_TOOL, "stun", "--ips", IPS[1], "--ports", "3478", "3479"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    p = LineProc(proc)
    assert p.line()["ready"]
    return p


def _rtt(ns: str, count: int, wait: float = 1.0) -> dict[str, object]:
    argv = [PY, UDP_TOOL, "rtt", "--server", f"{IPS[1]}:3478", "--count", str(count), "--wait", str(wait)]
    out = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=30)
    res: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


@pytest.mark.netns
def test_delay_and_loss(wire: tuple[str, str, str]) -> None:
    a, d, b = wire
    echo = _echo(b)
    line = start_delay_line("da", "db", netns=d, delay=0.05)
    res = _rtt(a, 5)
    counters = line.stop()
    assert res["ok"] == 5, res
    median = res["median"]
    assert isinstance(median, float)
    print(f"RTT over a 50 ms line: {median * 1000:.1f} ms; {counters}")
    assert 0.1 <= median < 0.2, res  # 2 x 50 ms
    assert counters["a_to_b"] >= 5 and counters["b_to_a"] >= 5 and counters["lost"] == 0, counters

    line = start_delay_line("da", "db", netns=d, delay=0.0, loss=1.0)
    res = _rtt(a, 3, wait=0.2)
    counters = line.stop()
    assert res["ok"] == 0, res
    assert counters["a_to_b"] == 0 and counters["lost"] >= 3, counters

    line = start_delay_line("da", "db", netns=d, delay=0.0)  # no delay: just the line's own cost
    res = _rtt(a, 5)
    line.stop()
    echo.close()
    assert res["ok"] == 5 and isinstance(res["median"], float) and res["median"] < 0.02, res


@pytest.mark.netns
def test_udp_gso_is_split_per_datagram(wire: tuple[str, str, str]) -> None:
    """A ``UDP_SEGMENT`` send crosses the line as separate, intact datagrams (checksums and lengths)."""
    a, d, b = wire
    sink = LineProc(
        subprocess.Popen(
            ["ip", "netns", "exec", b, PY, "-u", "-c", _SINK, IPS[1]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
    assert sink.line()["ready"]
    line = start_delay_line("da", "db", netns=d, delay=0.01)
    sender = subprocess.run(
        ["ip", "netns", "exec", a, PY, "-c", _GSO_SENDER, IPS[1]], capture_output=True, text=True, timeout=30
    )
    assert sender.returncode == 0, sender.stderr
    got = sink.line()
    counters = line.stop()
    sink.close()
    # 20 buffers of 40 x 1000 bytes + 123: 41 datagrams each, all intact
    assert got == {"n": 20 * 41, "bad": 0}, (got, counters)
    assert counters["gso_split"] >= 1, counters


_SINK = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind((sys.argv[1], 9000))
print(json.dumps({"ready": True}), flush=True)
n = bad = 0
s.settimeout(5)
while n < 20 * 41:
    try:
        data = s.recv(65536)
    except TimeoutError:
        break
    if data == b"ping":
        continue
    i = int.from_bytes(data[:4], "big")
    want = 1000 if i % 41 < 40 else 123
    n += 1
    bad += len(data) != want or data[4:] != bytes([i % 251]) * (want - 4)
print(json.dumps({"n": n, "bad": bad}), flush=True)
"""

_GSO_SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dest = (sys.argv[1], 9000)
s.sendto(b"ping", dest)  # resolve ARP first: the neighbour queue holds only a few 40 kB buffers
time.sleep(0.2)
s.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT
for k in range(20):
    buf = b"".join(
        (k * 41 + j).to_bytes(4, "big") + bytes([(k * 41 + j) % 251]) * ((1000 if j < 40 else 123) - 4)
        for j in range(41)
    )
    s.sendto(buf, dest)
    time.sleep(0.005)
"""


def _ones_sum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data[: len(data) // 2 * 2]))
    if len(data) % 2:
        total += data[-1] << 8
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_split_udp_gso_pure() -> None:
    """The split of a synthetic IPv4 UDP GSO frame, checked field by field (no root needed)."""
    rng = random.Random(5)
    payload = rng.randbytes(2 * 1200 + 77)
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    udp_len = 8 + len(payload)
    # the partial checksum as the kernel leaves it: the pseudo-header sum (not complemented)
    pseudo = _ones_sum(src + dst + struct.pack("!HH", 17, udp_len))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0x1234, 0, 64, 17, 0, src, dst)
    eth = bytes(6) + bytes([2] * 6) + b"\x08\x00"
    vnet = struct.pack("<BBHHHH", 1, 5, 42, 1200, 34, 6)
    frame = vnet + eth + ip + struct.pack("!HHHH", 4000, 5000, udp_len, pseudo) + payload
    segs = split_udp_gso(frame)
    assert segs is not None and len(segs) == 3
    joined = b""
    for i, seg in enumerate(segs):
        flags, gso_type, _, _, start, off = struct.unpack_from("<BBHHHH", seg)
        assert (flags, gso_type, start, off) == (1, 0, 34, 6)
        hdr = seg[10 + 14 : 10 + 34]
        assert _ones_sum(hdr) == 0xFFFF  # a valid IPv4 header checksum
        total, ident = struct.unpack_from("!HH", hdr, 2)
        body = seg[10 + 42 :]
        assert total == 28 + len(body) and ident == 0x1234 + i
        sport, dport, ulen, check = struct.unpack_from("!HHHH", seg, 10 + 34)
        assert (sport, dport, ulen) == (4000, 5000, 8 + len(body))
        assert check == _ones_sum(src + dst + struct.pack("!HH", 17, ulen))
        joined += body
    assert joined == payload
    assert [len(s) - 52 for s in segs] == [1200, 1200, 77]
    assert split_udp_gso(vnet[:1] + b"\x00" + vnet[2:] + frame[10:]) is None  # not GSO
    assert split_udp_gso(frame[:10] + eth[:12] + b"\x08\x06" + frame[24:]) is None  # not IP


@settings(max_examples=500, deadline=None)
@given(
    st.binary(min_size=10, max_size=400),
    st.integers(1, 300),
    st.integers(0, 120),
    st.sampled_from([b"\x08\x00", b"\x86\xdd", b"\x08\x06"]),
)
@example(frame=bytes(112), gso_size=5, csum_start=34, ethertype=b"\x86\xdd")  # an IPv6 header too short
def test_split_udp_gso_never_raises(frame: bytes, gso_size: int, csum_start: int, ethertype: bytes) -> None:
    """Any frame with a virtio_net_hdr: segments that re-join to its UDP payload, or None."""
    vnet = struct.pack("<BBHHHH", 1, 5, 0, gso_size, csum_start, 6)
    for f in (frame, vnet + frame[10:22] + ethertype + frame[24:]):
        segs = split_udp_gso(f)
        if segs is not None:
            start = 10 + csum_start + 8
            assert b"".join(seg[start:] for seg in segs) == f[start:]


@pytest.mark.netns
def test_bad_interface_is_reported(wire: tuple[str, str, str]) -> None:
    with pytest.raises(DelayLineError, match=r"No such device|nosuch"):
        start_delay_line("da", "nosuch", netns=wire[1], delay=0.01)
