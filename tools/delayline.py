"""A userspace "delay line": a transparent Ethernet wire between two interfaces that delays and drops frames.

Some kernels are built without the netem qdisc (``CONFIG_NET_SCH_NETEM``), so ``tc ... netem delay`` cannot
be used to add latency to a link in a network-namespace test. This module does the delay part of netem in
userspace, with only the standard library. Two ``AF_PACKET``/``SOCK_RAW`` sockets, each bound to one
interface of one namespace, receive every frame (``ETH_P_ALL``, promiscuous). A frame read on interface A is
sent out of interface B after ``delay`` seconds (``± jitter``, uniform, as netem's ``delay D J``; jitter may
reorder frames, as netem does) unless it is lost with probability ``loss``; B to A likewise. Each direction is
independent, so the one-way delay over the line is ``delay`` and a round trip grows by ``2 * delay``: the
same as netem on both ends of a veth pair. Frames the line itself sends (``sll_pkttype`` ==
``PACKET_OUTGOING``) are never read back. The queue holds at most ``limit`` frames (netem's ``limit``, 1000
by default there, 100 000 here); frames over it are dropped and counted.

Typical use joins two namespaces through a third one::

    A: veth a0 ──── d0 [delay line in D] d1 ──── veth b0 :B

The interfaces the line runs between must carry no IP address (it puts them up itself and asks for
promiscuous mode through ``PACKET_ADD_MEMBERSHIP``, which ends when the socket closes).

Checksums and segmentation offloads are preserved with ``PACKET_VNET_HDR``: each frame is read with its
``virtio_net_hdr`` (checksum-needed offsets, GSO type and size) and written back with it, so a UDP datagram
whose checksum the sending veth left to "hardware" is not dropped by the receiver, and a TCP segment of 64 KiB
built by TSO passes through whole. No ``ethtool`` is needed. A UDP GSO frame (a ``UDP_SEGMENT`` send of up
to 64 datagrams, which a veth hands over whole) is split into its datagrams (:func:`split_udp_gso`), so
loss applies per datagram as on a real path; netem drops such a frame whole, and ``split_gso=False``
(``--no-split-gso``) does the same.

Timing: the line sleeps in ``select`` until the next frame is due (microsecond timeouts; the kernel adds
its timer slack, 50 µs by default), so frames leave within a fraction of a millisecond of their due time.

Run it inside a namespace::

    ip netns exec D python3 -m tools.delayline --a d0 --b d1 --delay 0.02 [--jitter S] [--loss P]

It prints ``{"ready": true}`` on stdout once both sockets are bound, and on SIGTERM or SIGINT exits with
status 0 after printing its counters as one JSON line on stderr (``a_to_b``, ``b_to_a`` frames delivered,
``lost``, ``overflow``, ``send_errors``, ``max_queue``, ``gso_split``). :func:`start_delay_line` does that
from Python.

Cost: one ``recv_into`` into a preallocated buffer, one ``bytes`` copy of the frame, a heap push and pop and
one ``send`` per frame, on one thread with :func:`select.select`. On the development VM (2 cores, shared with
sender and receiver) it forwarded about 90 000 frames/s one way (110 MB/s of 1200-byte UDP datagrams, 20 ms
delay) before its socket buffer overflowed, far above what a UDX transfer through it needs.

Like :mod:`tools.natlab` this is a test tool and I/O by nature (raw sockets, the clock, a random
source for loss), not a sans-IO core. Linux only; needs ``CAP_NET_RAW`` and ``CAP_NET_ADMIN`` (root).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = [
    "DEFAULT_LIMIT",
    "DelayLine",
    "DelayLineError",
    "DelayLineProcess",
    "main",
    "split_udp_gso",
    "start_delay_line",
]

DEFAULT_LIMIT = 100_000
"""Frames the line may hold at once (both directions together); more are dropped and counted."""

_ETH_P_ALL = 0x0003
_SOL_PACKET = 263
_PACKET_ADD_MEMBERSHIP = 1
_PACKET_MR_PROMISC = 1
_PACKET_VNET_HDR = 15
_PACKET_IGNORE_OUTGOING = 23  # Linux >= 4.20
_PACKET_OUTGOING = 4
_SO_RCVBUFFORCE = 33
_SO_SNDBUFFORCE = 32
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_BUFFER = 4 << 20  # socket buffers, bytes
_MAX_FRAME = 65536 + 64  # a GSO frame (64 KiB) plus Ethernet/VLAN and the virtio_net_hdr
_BATCH = 64  # frames read from one socket per wake-up before looking at the other and at the clock


class DelayLineError(Exception):
    """The delay line could not be set up or started (the message says why)."""


def _set_up(sock: socket.socket, ifname: str) -> None:
    """Set ``IFF_UP`` on ``ifname`` with ``SIOCGIFFLAGS``/``SIOCSIFFLAGS`` (struct ifreq: name, flags)."""
    name = ifname.encode()
    req = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, struct.pack("16sH22x", name, 0))
    flags = struct.unpack_from("16xH", req)[0]
    if not flags & _IFF_UP:
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH22x", name, flags | _IFF_UP))


def _open(ifname: str) -> tuple[socket.socket, bool]:
    """A non-blocking raw packet socket bound to ``ifname``; also whether it ignores outgoing frames."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
    try:
        sock.setsockopt(_SOL_PACKET, _PACKET_VNET_HDR, 1)
        try:
            sock.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
            ignores = True
        except OSError:
            ignores = False
        for force, plain in ((_SO_RCVBUFFORCE, socket.SO_RCVBUF), (_SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, _BUFFER)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, _BUFFER)
        _set_up(sock, ifname)
        sock.bind((ifname, _ETH_P_ALL))
        mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), _PACKET_MR_PROMISC, 0, b"")
        sock.setsockopt(_SOL_PACKET, _PACKET_ADD_MEMBERSHIP, mreq)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, ignores


_VNET = struct.Struct(
    "<BBHHHH"
)  # virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
_VNET_LEN = _VNET.size
_F_NEEDS_CSUM = 1
_GSO_UDP_L4 = 5
_U16 = struct.Struct("!H")
_U16X2 = struct.Struct("!HH")


def _fold(value: int) -> int:
    value = (value & 0xFFFF) + (value >> 16)
    return (value & 0xFFFF) + (value >> 16)


def split_udp_gso(frame: bytes) -> list[bytes] | None:
    """Split a UDP GSO frame (``SKB_GSO_UDP_L4``, as Linux ``UDP_SEGMENT`` sends) into its datagrams.

    A veth hands a socket's 64 KiB UDP GSO buffer to its peer whole; netem would drop or delay it whole, but
    on a real path every datagram is lost on its own. The split does what the kernel's ``__udp_gso_segment``
    does: per segment, a copy of the Ethernet and IP headers with the lengths (and for IPv4 the id,
    incremented per segment, and the header checksum) fixed, and the UDP header with its length and its
    partial (pseudo-header) checksum adjusted; each goes out with ``NEEDS_CSUM`` as the original did.

    Args:
        frame: a frame as read with ``PACKET_VNET_HDR``: the 10-byte ``virtio_net_hdr``, then Ethernet.

    Returns:
        The segments in the same format, or ``None`` if the frame is not an untagged IPv4/IPv6 UDP GSO frame
        needing a checksum (it is then forwarded as it is).
    """
    flags, gso_type, _, gso_size, csum_start, csum_offset = _VNET.unpack_from(frame)
    if gso_type & 0x7F != _GSO_UDP_L4 or not gso_size or not flags & _F_NEEDS_CSUM:
        return None
    ethertype = frame[_VNET_LEN + 12 : _VNET_LEN + 14]
    ip = _VNET_LEN + 14
    udp = _VNET_LEN + csum_start
    payload = udp + 8
    v4 = ethertype == b"\x08\x00"
    if not v4 and ethertype != b"\x86\xdd":
        return None
    if ip + (20 if v4 else 40) > udp or payload > len(frame):
        return None
    view = memoryview(frame)
    vhdr = _VNET.pack(_F_NEEDS_CSUM, 0, 0, 0, csum_start, csum_offset)
    eth = view[_VNET_LEN:ip]
    ports = view[udp : udp + 4]
    old_len, check = _U16X2.unpack_from(frame, udp + 4)
    ip_len = udp - ip
    ip_id = _U16.unpack_from(frame, ip + 4)[0]
    out = []
    for i, start in enumerate(range(payload, len(frame), gso_size)):
        seg = view[start : start + gso_size]
        udp_len = 8 + len(seg)
        # the partial checksum holds the pseudo-header sum, which includes the UDP length
        new_check = _fold(check + (~old_len & 0xFFFF) + udp_len)
        head = bytearray(view[ip:udp])
        if v4:
            _U16X2.pack_into(head, 2, ip_len + udp_len, (ip_id + i) & 0xFFFF)
            head[10:12] = b"\0\0"
            total = int.from_bytes(head, "big") % 0xFFFF  # the one's-complement sum of 16-bit words
            _U16.pack_into(head, 10, 0xFFFF - (total or 0xFFFF))
        else:
            _U16.pack_into(head, 4, ip_len - 40 + udp_len)
        out.append(b"".join((vhdr, eth, head, ports, _U16X2.pack(udp_len, new_check), seg)))
    return out


class DelayLine:
    """The delay line itself (runs in the calling thread until :meth:`stop`; see the module docstring).

    Args:
        a: one interface name (in the current namespace).
        b: the other interface name.
        delay: one-way delay per direction, seconds (>= 0).
        jitter: the delay is uniform in ``[delay - jitter, delay + jitter]`` (clipped at 0), seconds.
        loss: probability of dropping a frame, per direction, 0.0-1.0.
        limit: frames held at most (both directions); more are dropped and counted as ``overflow``.
        split_gso: split UDP GSO frames into their datagrams (:func:`split_udp_gso`), so loss and the counts
            apply per datagram as on a real path. ``False`` forwards (and drops) them whole, as netem does.
        rng: the random source for loss and jitter (default: a ``random.Random()`` seeded by the OS).

    Raises:
        ValueError: a value out of range.
        OSError: a socket could not be opened or bound (no such interface, not root).
    """

    def __init__(
        self,
        a: str,
        b: str,
        *,
        delay: float,
        jitter: float = 0.0,
        loss: float = 0.0,
        limit: int = DEFAULT_LIMIT,
        split_gso: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if delay < 0 or jitter < 0 or not 0.0 <= loss <= 1.0 or limit < 1 or a == b:
            raise ValueError("need delay >= 0, jitter >= 0, 0 <= loss <= 1, limit >= 1 and two interfaces")
        self.delay = delay
        self.jitter = jitter
        self.loss = loss
        self.limit = limit
        self.split_gso = split_gso
        self._rng = rng if rng is not None else random.Random()
        self.counters = dict.fromkeys(
            ("a_to_b", "b_to_a", "lost", "overflow", "send_errors", "max_queue", "gso_split"), 0
        )
        """Frames delivered each way, lost (``loss``), dropped over ``limit``, failed sends, peak queue, and
        UDP GSO frames split into datagrams (loss, delay and the counts apply per datagram)."""
        sa, ia = _open(a)
        try:
            sb, ib = _open(b)
        except BaseException:
            sa.close()
            raise
        self._socks = (sa, sb)
        self._ignores_outgoing = ia and ib
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stopping = False

    def stop(self) -> None:
        """Ask :meth:`run` to return (safe from a signal handler or another thread)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Close the sockets (ending promiscuous mode) and the wake-up pipe."""
        for sock in self._socks:
            sock.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def run(self) -> None:
        """Forward frames until :meth:`stop`; frames still queued then are discarded."""
        sa, sb = self._socks
        # per input socket: (output socket, direction index into `sent`)
        route = {sa.fileno(): (sa, sb, 0), sb.fileno(): (sb, sa, 1)}
        fds = [*route, self._wake_r]
        wait_for = select.select  # microsecond timeouts (poll and epoll round up to milliseconds)
        buf = bytearray(_MAX_FRAME)
        view = memoryview(buf)
        heap: list[tuple[float, int, int, bytes]] = []
        sent = [0, 0]
        outs = (sb, sa)
        seq = 0
        lost = overflow = errors = peak = split = 0
        delay, jitter, loss, limit, split_gso = self.delay, self.jitter, self.loss, self.limit, self.split_gso
        rnd = self._rng.random
        monotonic = time.monotonic
        heappush, heappop = heapq.heappush, heapq.heappop
        ignores = self._ignores_outgoing
        wake = self._wake_r
        try:
            while not self._stopping:
                timeout = max(0.0, heap[0][0] - monotonic()) if heap else None
                for fd in wait_for(fds, (), (), timeout)[0]:
                    if fd == wake:
                        while True:
                            try:
                                if not os.read(wake, 64):
                                    break
                            except BlockingIOError:
                                break
                        continue
                    sock, _out, direction = route[fd]
                    for _ in range(_BATCH):
                        try:
                            if ignores:
                                n = sock.recv_into(buf)
                            else:
                                n, addr = sock.recvfrom_into(buf)
                                if addr[2] == _PACKET_OUTGOING:
                                    continue
                        except (BlockingIOError, InterruptedError):
                            break
                        frame = bytes(view[:n])
                        packets = [frame]
                        if split_gso and buf[1] & 0x7F == _GSO_UDP_L4:
                            packets = split_udp_gso(frame) or packets
                            split += 1
                        now = monotonic()
                        for packet in packets:
                            if loss and rnd() < loss:
                                lost += 1
                                continue
                            if len(heap) >= limit:
                                overflow += 1
                                continue
                            due = now + delay
                            if jitter:
                                due += jitter * (2.0 * rnd() - 1.0)
                            seq += 1
                            heappush(heap, (due, seq, direction, packet))
                    if len(heap) > peak:
                        peak = len(heap)
                now = monotonic()
                while heap and heap[0][0] <= now:
                    _, _, direction, frame = heappop(heap)
                    try:
                        outs[direction].send(frame)
                        sent[direction] += 1
                    except OSError:  # ENOBUFS, EMSGSIZE, the interface went away ...
                        errors += 1
        finally:
            c = self.counters
            c["a_to_b"] += sent[0]
            c["b_to_a"] += sent[1]
            c["lost"] += lost
            c["overflow"] += overflow
            c["send_errors"] += errors
            c["max_queue"] = max(c["max_queue"], peak)
            c["gso_split"] += split


class DelayLineProcess:
    """A delay line running as a child process (from :func:`start_delay_line`)."""

    def __init__(self, proc: subprocess.Popen[bytes], argv: Sequence[str]) -> None:
        self.proc = proc
        """The ``python3 -m tools.delayline`` process (``ip netns exec`` execs into it)."""
        self.argv = list(argv)
        self.counters: dict[str, int] | None = None
        """Its final counters once :meth:`stop` has read them (see :class:`DelayLine`), else ``None``."""

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> dict[str, int]:
        """Stop it (SIGTERM, SIGKILL after ``timeout`` seconds) and return its counters.

        Returns:
            The counters it printed (``{}`` if it was killed or printed none). Safe to call twice.
        """
        if self.counters is not None:
            return self.counters
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.counters = {}
        for line in reversed(err.decode(errors="replace").splitlines()):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                self.counters = {str(k): int(v) for k, v in value.items()}
                break
        return self.counters


def start_delay_line(
    a: str,
    b: str,
    *,
    delay: float,
    jitter: float = 0.0,
    loss: float = 0.0,
    netns: str | None = None,
    limit: int = DEFAULT_LIMIT,
    split_gso: bool = True,
    seed: int | None = None,
    timeout: float = 10.0,
) -> DelayLineProcess:
    """Start a delay line between interfaces ``a`` and ``b`` (of namespace ``netns``) as a child process.

    Returns once it has bound both sockets (it printed ``{"ready": true}``). Stop it with
    :meth:`DelayLineProcess.stop`; killing it (e.g. by deleting the namespace's processes) is also safe.

    Args:
        a: one interface (no IP address on it; it is put up).
        b: the other interface.
        delay: one-way delay per direction, seconds.
        jitter: delay variation (uniform ``± jitter``), seconds.
        loss: drop probability per direction, 0.0-1.0.
        netns: run inside this named network namespace (``ip netns exec``), or in the current one.
        limit: frames held at most.
        split_gso: split UDP GSO frames per datagram (see :class:`DelayLine`).
        seed: seed for loss and jitter (default: random).
        timeout: seconds to wait for it to become ready.

    Returns:
        The running process.

    Raises:
        ValueError: a value out of range.
        DelayLineError: it exited or did not become ready in time (the message holds its stderr).
    """
    if delay < 0 or jitter < 0 or not 0.0 <= loss <= 1.0 or limit < 1:
        raise ValueError("need delay >= 0, jitter >= 0, 0 <= loss <= 1 and limit >= 1")
    argv = [sys.executable, "-m", "tools.delayline", "--a", a, "--b", b, "--delay", repr(delay)]
    argv += ["--jitter", repr(jitter), "--loss", repr(loss), "--limit", str(limit)]
    if not split_gso:
        argv.append("--no-split-gso")
    if seed is not None:
        argv += ["--seed", str(seed)]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])  # the repository root, which holds the tools package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    line = DelayLineProcess(proc, argv)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    got = b""
    fd = proc.stdout.fileno()
    while b"\n" not in got:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            reason = "timed out" if not ready else f"exited with {proc.poll()}"
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate()
            raise DelayLineError(f"delay line {reason}: {err.decode(errors='replace').strip()[-1000:]}")
        got += chunk
    try:
        ok = json.loads(got.split(b"\n", 1)[0]).get("ready") is True
    except (ValueError, AttributeError):
        ok = False
    if not ok:
        line.stop()
        raise DelayLineError(f"delay line said {got!r}")
    return line


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring). Returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python3 -m tools.delayline",
        description="Delay and drop frames between two interfaces.",
    )
    parser.add_argument("--a", required=True, help="one interface")
    parser.add_argument("--b", required=True, help="the other interface")
    parser.add_argument("--delay", type=float, required=True, help="one-way delay per direction, seconds")
    parser.add_argument("--jitter", type=float, default=0.0, help="delay variation (uniform +-), seconds")
    parser.add_argument("--loss", type=float, default=0.0, help="drop probability per direction, 0-1")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="frames held at most")
    parser.add_argument(
        "--no-split-gso",
        action="store_true",
        help="forward UDP GSO frames whole (as netem), not per datagram",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed for loss and jitter")
    args = parser.parse_args(argv)
    try:
        line = DelayLine(
            args.a,
            args.b,
            delay=args.delay,
            jitter=args.jitter,
            loss=args.loss,
            limit=args.limit,
            split_gso=not args.no_split_gso,
            rng=random.Random(args.seed),
        )
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr, flush=True)
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        line.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(json.dumps({"ready": True}), flush=True)
    try:
        line.run()
    finally:
        line.close()
        counters: dict[str, Any] = dict(line.counters)
        print(json.dumps(counters), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
