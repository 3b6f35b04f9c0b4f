"""The NAT matrix: connect-by-key between a server behind NAT X and a client behind NAT Y, for every pair.

Used by ``test_natlab_matrix.py``, ``test_natlab_idle.py`` and ``scripts/nat-matrix.py``. Two halves:

* **Peer programs** that run inside lab hosts. ``python3 matrix_lib.py server|client ...`` (peerdht) and
  ``node tests/js/natlab-peer.js server|client ...`` (JS hyperdht) take the same arguments and print the
  same JSON lines, so the harness treats them alike.
* **The harness** (:func:`build_lab`, :func:`run_pair`, :func:`run_matrix`, :func:`markdown`) that builds
  the lab, starts the peers and collects one :class:`Cell` per (server, client) pair.

Payload check, both ways: the client sends frames (4-byte big-endian length, then random bytes); the server
answers each with ``sha256(frame) || shake_256(frame)[:len(frame)]``. The client checks both parts, so a
passing frame proves the server got exactly what was sent and the client got exactly what the server sent.

The strategy. The peerdht client reports the stream's ``path`` (how ``connect`` opened it: see
:data:`peerdht.aio.hyperdht.connect.PATHS`). The JS client reads
``dht.stats.punches`` (open / consistent / random) and the LAN shortcut from the stream's remote address.
Finally the harness compares the stream's remote address with the server's addresses: anything else
(a public relay node) is "relay".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
JS_PEER = REPO / "tests" / "js" / "natlab-peer.js"
PY = sys.executable

KINDS = ("public", "full-cone", "restricted-cone", "port-restricted-cone", "symmetric")
"""Row/column kinds: the public segment, then the four NAT types (``NatType`` values)."""
SHORT = {
    "public": "pub",
    "full-cone": "full",
    "restricted-cone": "rc",
    "port-restricted-cone": "prc",
    "symmetric": "sym",
}
LABEL = {
    "public": "public",
    "full-cone": "full cone",
    "restricted-cone": "restricted cone",
    "port-restricted-cone": "port-restricted",
    "symmetric": "symmetric",
}

# ---------------------------------------------------------------------------------------------------
# Frames (both peer programs)


def reply_for(frame: bytes) -> bytes:
    """The server's answer to one frame: sha256 of it, then shake_256 of it, as long as the frame."""
    return hashlib.sha256(frame).digest() + hashlib.shake_256(frame).digest(len(frame))


# ---------------------------------------------------------------------------------------------------
# The peerdht peer program (runs inside a lab host)


def _out(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _open_dht(bootstrap: list[str]) -> Any:
    from peerdht.aio.hyperdht import HyperDHT

    boot = [(h, int(p)) for h, p in (b.rsplit(":", 1) for b in bootstrap)]
    dht = HyperDHT(bootstrap=boot)
    await dht.open()
    await dht.fully_bootstrapped()
    return dht


async def _serve(args: argparse.Namespace) -> int:
    from peerdht.hyper.crypto import KeyPair

    dht = await _open_dht(args.bootstrap)
    kp = KeyPair.from_seed(bytes.fromhex(args.seed))
    server: Any = None

    async def handler(stream: Any) -> None:
        raw = getattr(stream, "raw", None)
        _out(
            {
                "event": "connection",
                "remote": list(getattr(raw, "remote_addr", None) or ()),
                "stats": server.stats,
            }
        )
        try:
            while True:
                try:
                    head = await stream.readexactly(4)
                except (asyncio.IncompleteReadError, EOFError):
                    break
                frame = await stream.readexactly(struct.unpack(">I", head)[0])
                stream.write(reply_for(frame))
                await stream.drain()
                _out({"event": "frame", "size": len(frame)})
        except Exception as exc:  # reported, never fatal for the server
            _out({"event": "error", "error": repr(exc)})
        finally:
            stream.close()

    server = dht.create_server(handler)
    await server.listen(kp)
    _out({"ready": True, "key": kp.public_key.hex(), "firewall": int(dht.core.firewalled)})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the harness closes our stdin
    _out({"event": "stats", "stats": server.stats})
    await server.close()
    await dht.destroy()
    return 0


async def _exchange(stream: Any, size: int) -> bool:
    frame = os.urandom(size)
    stream.write(struct.pack(">I", size) + frame)
    await stream.drain()
    got = await stream.readexactly(32 + size)
    return bool(got == reply_for(frame))


async def _client(args: argparse.Namespace) -> int:
    path: list[str] = []
    res: dict[str, Any] = {"ok": False, "impl": "py"}
    dht = await _open_dht(args.bootstrap)
    res["firewalled"] = bool(dht.core.firewalled)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        relay_through = bytes.fromhex(args.relay_through) if args.relay_through else None
        stream = await asyncio.wait_for(
            dht.connect(bytes.fromhex(args.key), relay_through=relay_through), args.timeout
        )
    except Exception as exc:
        res.update(error=f"{type(exc).__name__}: {exc}", seconds=loop.time() - t0, path=path)
        _out(res)
        await dht.destroy()
        return 1
    path.append(str(stream.path))
    res.update(seconds=loop.time() - t0, path=path)
    raw = getattr(stream, "raw", None)
    res["remote"] = list(getattr(raw, "remote_addr", None) or ())
    try:
        ok = await asyncio.wait_for(_exchange(stream, args.size), 30)
        res["payload"] = ok
        if ok and args.idle:
            _out({"event": "idle", "seconds": args.idle})
            await asyncio.sleep(args.idle)
            res["after_idle"] = await asyncio.wait_for(_exchange(stream, args.size), 30)
            res["remote_after"] = list(getattr(raw, "remote_addr", None) or ())
        res["ok"] = bool(res["payload"] and res.get("after_idle", True))
    except Exception as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
    res["path"] = path
    _out(res)
    stream.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(stream.wait_closed(), 3)
    await dht.destroy()
    return 0 if res["ok"] else 1


async def _relay(args: argparse.Namespace) -> int:
    """A discoverable relay node (``peerdht.aio.hyperdht.relay.start_relay``) on a public host, if this peerdht
    has one; prints ``{"ready": true, "key"}`` or ``{"ready": false, "reason"}``."""
    try:
        from peerdht.aio.hyperdht import relay as relay_mod
    except ImportError as exc:
        _out({"ready": False, "reason": f"no relay module: {exc}"})
        return 0
    start = getattr(relay_mod, "start_relay", None)
    if start is None:
        _out({"ready": False, "reason": "peerdht.aio.hyperdht.relay has no start_relay"})
        return 0
    from peerdht.aio.hyperdht import HyperDHT

    boot = [(h, int(p)) for h, p in (b.rsplit(":", 1) for b in args.bootstrap)]
    # a reachable, persistent node on the public segment, like `peerdht node --persistent --relay`
    dht = HyperDHT(bootstrap=boot, ephemeral=False, firewalled=False)
    await dht.open()
    await dht.fully_bootstrapped()
    server = await start(dht)
    waiter = getattr(server, "wait_announced", None)
    if waiter is not None:  # relays announce themselves only once their node is reachable
        try:
            await asyncio.wait_for(waiter(), 30)
        except TimeoutError:
            _out({"ready": False, "reason": "the relay was not announced within 30 s"})
            return 1
    _out({"ready": True, "key": bytes(server.public_key).hex()})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.close()
    await dht.destroy()
    return 0


def _disable_keepalive() -> None:
    from peerdht.aio.hyperdht import secretstream

    orig = secretstream.SecretStream.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["keep_alive"] = None
        orig(self, *args, **kwargs)

    secretstream.SecretStream.__init__ = init  # type: ignore[method-assign]


def peer_main(argv: Sequence[str] | None = None) -> int:
    """``matrix_lib.py server --bootstrap H:P... --seed HEX`` or ``client --bootstrap ... --key HEX``."""
    p = argparse.ArgumentParser(prog="matrix_lib.py")
    p.add_argument("role", choices=["server", "client", "relay"])
    p.add_argument("--bootstrap", action="append", default=[])
    p.add_argument("--seed", default="")
    p.add_argument("--key", default="")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--idle", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--relay-through", default="", help="client: a blind relay's public key (hex) to relay through")
    p.add_argument(
        "--no-keepalive", action="store_true", help="disable secret-stream keep-alives (negative control)"
    )
    args = p.parse_args(argv)
    if os.environ.get("MATRIX_LOG"):  # debugging a pair by hand: peerdht's debug log to this file
        import logging

        logging.basicConfig(
            filename=f"{os.environ['MATRIX_LOG']}.{args.role}.{os.getpid()}",
            level=logging.DEBUG,
            format="%(relativeCreated)d %(name)s %(message)s",
        )
    if args.no_keepalive:
        _disable_keepalive()
    if args.role == "server":
        return asyncio.run(_serve(args))
    if args.role == "relay":
        return asyncio.run(_relay(args))
    return asyncio.run(_client(args))


# ---------------------------------------------------------------------------------------------------
# The harness (runs as root, outside the lab)


@dataclass(kw_only=True)
class Cell:
    """One (server kind, client kind) pair of one implementation, over ``tries`` attempts."""

    impl: str
    server: str
    client: str
    ok: int = 0
    tries: int = 0
    strategy: str = ""
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["median"] = self.median
        return d


def host_name(side: str, kind: str) -> str:
    """Lab host name of a side ("s" server, "c" client) and kind: e.g. ``sprc``, ``cpub``."""
    return f"{side}{SHORT[kind]}"


def build_lab(lab: Any, kinds: Iterable[str] = KINDS, *, udp_timeout: float | None = None) -> dict[str, Any]:
    """Add public hosts ``boot`` (the testnet) and ``relay`` (a relay node, if one is started) and one
    server and one client host per kind, each behind its own router.

    Returns:
        ``{"boot": Host, "relay": Host, "s<kind>": Host, "c<kind>": Host, ...}``.
    """
    hosts: dict[str, Any] = {"boot": lab.add_public("boot"), "relay": lab.add_public("relay")}
    for kind in kinds:
        for side in ("s", "c"):
            name = host_name(side, kind)
            if kind == "public":
                hosts[name] = lab.add_public(name)
            else:
                hosts[name] = lab.add_private(name, kind, udp_timeout=udp_timeout)
    return hosts


class _Proc:
    """A peer process: JSON lines from stdout (with timeouts), stderr to a temporary file."""

    def __init__(self, lab: Any, host: Any, argv: list[str], cwd: Path | None = None) -> None:
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        full = argv if cwd is None else ["sh", "-c", f'cd "{cwd}" && exec "$@"', "sh", *argv]
        self.proc: subprocess.Popen[str] = lab.popen(host, full, stderr=self._err.fileno())
        self._buf = b""

    def line(self, timeout: float) -> dict[str, Any]:
        import select

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line from {self.proc.args!r} in {timeout} s")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError(f"exited: {self.stderr()[-2000:]}")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\n", 1)
        obj: dict[str, Any] = json.loads(raw)
        return obj

    def until(self, pred: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            obj = self.line(max(0.01, deadline - time.monotonic()))
            if pred(obj):
                return obj

    def stderr(self) -> str:
        self._err.seek(0)
        return self._err.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._err.close()


def start_relay_node(lab: Any, host: Any, bootstrap: Sequence[str]) -> tuple[_Proc | None, str]:
    """Start a peerdht relay on ``host`` (public). Returns the process (None if this peerdht has no
    relay) and its public key hex or the reason it did not start."""
    argv, cwd = peer_argv("py", "relay", bootstrap)
    proc = _Proc(lab, host, argv, cwd)
    try:
        ready = proc.line(30)
    except (TimeoutError, EOFError) as exc:
        reason = f"relay did not start: {exc}"
        proc.close()
        return None, reason
    if not ready.get("ready"):
        proc.close()
        return None, str(ready.get("reason"))
    return proc, str(ready["key"])


def peer_argv(impl: str, role: str, bootstrap: Sequence[str], **opts: Any) -> tuple[list[str], Path | None]:
    """The command line of a peer program and the directory to run it in."""
    args = [role]
    for b in bootstrap:
        args += ["--bootstrap", b]
    for k, v in opts.items():
        args += [f"--{k}", str(v)]
    if impl == "py":
        return [PY, "-u", str(Path(__file__).resolve()), *args], None
    return ["node", str(JS_PEER), *args], REPO


def classify(res: dict[str, Any], server: Any, client: Any, impl: str) -> str:
    """The strategy name of a successful connection (see the module docstring).

    ``direct``: to the server's public address, no punch (the server is public, or the client is and the
    server opened the stream to it: ``reverse``); ``lan``; ``consistent`` (simultaneous open, both
    mappings predictable); ``birthday`` (the client randomises: many client sockets, the server sprays
    ports); ``random-probes`` (the server randomises: the client sprays ports, the server's birthday
    sockets); ``relay``.
    """
    remote = res.get("remote") or []
    server_ips = {server.ip, server.public_ip}
    if remote and remote[0] not in server_ips:
        return "relay"
    if remote and remote[0] == server.ip and server.ip != server.public_ip:
        return "lan"
    path: list[str] = list(res.get("path") or [])
    if impl == "js":
        raw = str(res.get("strategy") or "?")
        if "relay" in raw:
            return "relay"
        if "random" in raw:
            return "birthday" if client.nat == "symmetric" else "random-probes"
        if raw == "none":  # no Holepuncher ran: the stream opened during the handshake
            if server.nat is None:
                return "direct"
            return "consistent" if res.get("firewalled") else "reverse"
        return raw
    return path[0] if path else "?"  # SecretStream.path


def run_pair(
    lab: Any,
    server: Any,
    client: Any,
    bootstrap: Sequence[str],
    *,
    impl: str = "py",
    size: int = 4096,
    idle: float = 0.0,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
    client_impl: str | None = None,
    client_args: Sequence[str] = (),
) -> dict[str, Any]:
    """One connect: a fresh server (new key) on ``server``, a fresh client on ``client``.

    ``extra_args`` go to both peer programs (e.g. ``--no-keepalive`` for the peerdht one),
    ``client_args`` to the client only. ``client_impl`` (default: ``impl``) mixes implementations.

    Returns:
        The client's result line plus ``strategy``, ``server_events`` and, on failure, ``error``.
    """
    seed = os.urandom(32).hex()
    argv, cwd = peer_argv(impl, "server", bootstrap, seed=seed)
    argv += extra_args
    srv = _Proc(lab, server, argv, cwd)
    res: dict[str, Any]
    try:
        try:
            ready = srv.until(lambda o: bool(o.get("ready")), 30)
        except (TimeoutError, EOFError) as exc:
            return {"ok": False, "error": f"server did not start: {exc}; {srv.stderr()[-500:]}"}
        argv, cwd = peer_argv(
            client_impl or impl, "client", bootstrap, key=ready["key"], size=size, idle=idle, timeout=timeout
        )
        argv += [*extra_args, *client_args]
        cli = _Proc(lab, client, argv, cwd)
        try:
            res = cli.until(lambda o: "ok" in o, timeout + idle + 45)
        except (TimeoutError, EOFError) as exc:
            res = {"ok": False, "error": f"client: {exc}; {cli.stderr()[-500:]}"}
        finally:
            cli.close()
        events: list[dict[str, Any]] = []
        if srv.proc.stdin is not None:
            with contextlib.suppress(OSError):
                srv.proc.stdin.close()
        with contextlib.suppress(TimeoutError, EOFError):
            while True:
                events.append(srv.line(3))
        res["server_events"] = [e for e in events if e.get("event") in ("connection", "stats", "error")]
    finally:
        srv.close()
    if res.get("ok"):
        res["strategy"] = classify(res, server, client, client_impl or impl)
    return res


def _rounds(pairs: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Group pairs so that no host is in two pairs of one round (a Latin square over the kinds)."""
    left = list(pairs)
    rounds: list[list[tuple[str, str]]] = []
    while left:
        used_s: set[str] = set()
        used_c: set[str] = set()
        this: list[tuple[str, str]] = []
        for s, c in list(left):
            if s not in used_s and c not in used_c:
                this.append((s, c))
                used_s.add(s)
                used_c.add(c)
                left.remove((s, c))
        rounds.append(this)
    return rounds


def all_pairs(kinds: Sequence[str] = KINDS) -> list[tuple[str, str]]:
    """(server kind, client kind) pairs in Latin-square order, so :func:`_rounds` packs them tightly."""
    n = len(kinds)
    return [(kinds[i], kinds[(i + k) % n]) for k in range(n) for i in range(n)]


def run_matrix(
    lab: Any,
    hosts: dict[str, Any],
    bootstrap: Sequence[str],
    *,
    impl: str = "py",
    tries: int = 1,
    pairs: Sequence[tuple[str, str]] | None = None,
    parallel: bool = True,
    size: int = 4096,
    timeout: float = 60.0,
    log: Callable[[str], None] | None = None,
) -> dict[tuple[str, str], Cell]:
    """Every pair ``tries`` times. With ``parallel``, pairs that share no host run at the same time."""
    todo = list(pairs if pairs is not None else all_pairs())
    cells = {(s, c): Cell(impl=impl, server=s, client=c) for s, c in todo}
    for _ in range(tries):
        groups = _rounds(todo) if parallel else [[p] for p in todo]
        for group in groups:
            results: dict[tuple[str, str], dict[str, Any]] = {}

            def one(s: str, c: str, results: dict[tuple[str, str], dict[str, Any]] = results) -> None:
                results[(s, c)] = run_pair(
                    lab,
                    hosts[host_name("s", s)],
                    hosts[host_name("c", c)],
                    bootstrap,
                    impl=impl,
                    size=size,
                    timeout=timeout,
                )

            threads = [threading.Thread(target=one, args=p) for p in group]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for p in group:
                r = results[p]
                cell = cells[p]
                cell.tries += 1
                cell.details.append({k: v for k, v in r.items() if k != "server_events"})
                if r.get("ok"):
                    cell.ok += 1
                    cell.seconds.append(float(r["seconds"]))
                    strategies = {d["strategy"] for d in cell.details if d.get("ok")}
                    cell.strategy = "/".join(sorted(strategies))
                else:
                    cell.errors.append(str(r.get("error", "?"))[:300])
                if log is not None:
                    log(
                        f"{impl} {SHORT[p[0]]:>4} <- {SHORT[p[1]]:<4} "
                        + (
                            f"ok {r['strategy']} {r['seconds']:.2f}s"
                            if r.get("ok")
                            else f"FAIL {r.get('error')}"
                        )
                    )
    return cells


def merge_cells(a: Cell, b: Cell) -> Cell:
    """One cell holding the tries of ``a`` and then ``b`` (same implementation and pair)."""
    out = Cell(impl=a.impl, server=a.server, client=a.client)
    for c in (a, b):
        out.ok += c.ok
        out.tries += c.tries
        out.seconds += c.seconds
        out.errors += c.errors
        out.details += c.details
    out.strategy = "/".join(sorted({d["strategy"] for d in out.details if d.get("ok")}))
    return out


def allowed_strategies(server: str, client: str) -> set[str]:
    """The strategies theory allows for a pair: a punch that fits the two NATs' mapping behaviour
    (a public host that has not yet found out it is reachable punches too), "direct" to a public server,
    "reverse" (the server opens the stream) to a public client; relay only where no punch can work:
    symmetric on both sides."""
    if server == client == "symmetric":
        return {"relay"}
    if client == "symmetric":
        allowed = {"birthday"}
    elif server == "symmetric":
        allowed = {"random-probes"}
    else:
        allowed = {"consistent"}
    if "symmetric" in (server, client) and {server, client} & {"public", "full-cone", "restricted-cone"}:
        # the open/cone side's filter admits any port of the peer's address, so it answers the probe
        # it gets from the symmetric side's fresh mapping (a public host that has not yet found out it
        # is reachable punches like a full cone)
        allowed.add("consistent")
    if server == "public":
        allowed.add("direct")
    if client == "public":
        allowed |= {"reverse", "direct"}
    return allowed


def cell_text(cell: Cell | None) -> str:
    """``ok consistent 12 ms`` / ``2/3 birthday 1.2 s`` / ``FAIL (reason)`` for a markdown table: the
    success count (``ok`` = every try), the strategies seen, the median time to open."""
    if cell is None:
        return "-"
    if not cell.ok:
        err = cell.errors[0] if cell.errors else "?"
        return f"FAIL ({_short_error(err)})"
    rate = "ok" if cell.ok == cell.tries else f"{cell.ok}/{cell.tries}"
    med = cell.median
    if med is None:
        return rate
    return f"{rate} {cell.strategy} {med * 1000:.0f} ms" if med < 1 else f"{rate} {cell.strategy} {med:.1f} s"


def _short_error(err: str) -> str:
    for word in (
        "DOUBLE_RANDOMIZED",
        "DoubleRandomized",
        "HolepunchAborted",
        "HOLEPUNCH_ABORTED",
        "PeerNotFound",
        "PEER_NOT_FOUND",
        "Timeout",
        "TRY_LATER",
        "CannotHolepunch",
        "HOLEPUNCH_PROBE_TIMEOUT",
        "HolepunchProbeTimeout",
    ):
        if word.lower() in err.lower():
            return word
    return err.split(":")[0][:40]


def markdown(cells: dict[tuple[str, str], Cell], kinds: Sequence[str] = KINDS) -> str:
    """A table: rows are the server's kind, columns the client's."""
    head = "| server ↓ / client → | " + " | ".join(LABEL[k] for k in kinds) + " |"
    sep = "|---" * (len(kinds) + 1) + "|"
    rows = [head, sep]
    for s in kinds:
        rows.append(f"| **{LABEL[s]}** | " + " | ".join(cell_text(cells.get((s, c))) for c in kinds) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(peer_main())
