"""Tiny UDP programs for the NAT lab, run inside lab namespaces (``python3 udp_tool.py <command> ...``).

Standard library only; every loop is bounded; the only addresses used are the ones given on the command
line (lab addresses). Each command prints JSON lines on stdout.

Commands:
  stun --ips IP... --ports PORT... [--secs S]
      A STUN-like echo and rendezvous server on every IP x PORT. Prints {"ready": true} once bound and
      runs until stdin closes or S seconds pass. Requests (JSON datagrams):
        {"op": "bind", "tid": T, "reply_from": "same"|"other_port"|"other_ip", "delay": secs, "to_port": P}
            -> {"op": "mapped", "addr": [ip, port], "tid": T} to the sender (or to its IP at port P),
               sent from the chosen socket after `delay` seconds (RFC 5780-style change requests).
        {"op": "reg", "room": R, "name": N}
            -> once two names are in room R, {"op": "peer", "you": [ip, port], "peer": [ip, port]} to both.
  natcheck --server IP --other-ip IP2 [--ports P1 P2]
      Classify the NAT in front of this host: mapping (same public port for 3 destinations?) and filtering
      (does a reply from the same ip:port / another port / another IP arrive on a fresh socket?) and
      whether a packet to a port this host never sent from gets in.
  punch --rdv IP:PORT --room R --name N --port P [--secs S]
      Simultaneous-open UDP holepunch: register at the rendezvous, learn the peer's public endpoint, send a
      punch every 20 ms, switch to the source address the peer's punches actually come from (ICE
      peer-reflexive), finish when the peer has confirmed seeing ours; then send a few more confirmations.
  expiry --server IP:PORT --delay D [--wait W]
      Ask the server to answer after D seconds (with no traffic in between) and report whether the answer
      got through the NAT ({"got": bool}).
  rtt --server IP:PORT [--count N] [--wait W]
      How many of N bind requests got answers within W seconds, and the median round trip, seconds.
  send --bind IP:PORT --to IP:PORT
      Send one datagram from IP:PORT (an unsolicited packet).
  ask [--port P] --server IP:PORT
      One bind request from local port P: what public address does the server see?
  hard --easy IP:PORT [--n N] [--secs S]
      Birthday punch, symmetric side: N sockets each send to the easy side's public endpoint (N random
      public ports), then wait for a probe and answer it.
  easy --hard-ip IP --port P [--k K] [--lo LO] [--hi HI]
      Birthday punch, easy side: from local port P, probe K random ports of the hard side's public IP in
      [LO, HI] (about 4000 probes/s) until one is answered.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import select
import socket
import statistics
import sys
import time
from typing import Any


def _out(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _udp(bind: tuple[str, int] = ("0.0.0.0", 0)) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(bind)
    return s


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


# -- stun / rendezvous server -------------------------------------------------------------------------------


def cmd_stun(args: argparse.Namespace) -> None:
    ips: list[str] = args.ips
    ports: list[int] = args.ports
    socks = {(ip, port): _udp((ip, port)) for ip in ips for port in ports}
    by_fd = {s.fileno(): key for key, s in socks.items()}
    rooms: dict[str, dict[str, tuple[str, int]]] = {}
    pending: list[tuple[float, int, tuple[str, int], bytes, tuple[str, int]]] = []
    seq = 0
    end = time.monotonic() + args.secs
    _out({"ready": True, "ips": ips, "ports": ports})
    watch: list[Any] = [*socks.values(), sys.stdin]
    while time.monotonic() < end:
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, _, key, data, dst = heapq.heappop(pending)
            socks[key].sendto(data, dst)
        timeout = min(0.2, max(0.0, pending[0][0] - now)) if pending else 0.2
        ready, _, _ = select.select(watch, [], [], timeout)
        for r in ready:
            if r is sys.stdin:
                if not sys.stdin.readline():
                    return
                continue
            local = by_fd[r.fileno()]
            data, src = r.recvfrom(2048)
            try:
                msg = json.loads(data)
            except ValueError:
                continue
            if msg.get("op") == "bind":
                key = local
                if msg.get("reply_from") == "other_port":
                    key = (local[0], next(p for p in ports if p != local[1]))
                elif msg.get("reply_from") == "other_ip":
                    key = (next(ip for ip in ips if ip != local[0]), local[1])
                dst = (src[0], int(msg["to_port"])) if msg.get("to_port") else src
                reply = json.dumps({"op": "mapped", "addr": list(src), "tid": msg.get("tid")}).encode()
                seq += 1
                heapq.heappush(pending, (now + float(msg.get("delay", 0)), seq, key, reply, dst))
            elif msg.get("op") == "reg":
                room = rooms.setdefault(str(msg["room"]), {})
                room[str(msg["name"])] = src
                if len(room) >= 2:
                    (_, a1), (_, a2) = list(room.items())[:2]
                    r.sendto(json.dumps({"op": "peer", "you": list(a1), "peer": list(a2)}).encode(), a1)
                    r.sendto(json.dumps({"op": "peer", "you": list(a2), "peer": list(a1)}).encode(), a2)


# -- NAT classifier -----------------------------------------------------------------------------------------


def _ask(
    s: socket.socket, dst: tuple[str, int], tries: int = 2, wait: float = 0.25, **kw: Any
) -> tuple[str, int] | None:
    tid = os.urandom(6).hex()
    s.settimeout(wait)
    for _ in range(tries):
        s.sendto(json.dumps({"op": "bind", "tid": tid, **kw}).encode(), dst)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                data, _src = s.recvfrom(2048)
            except (TimeoutError, ConnectionRefusedError):
                break
            msg = json.loads(data)
            if msg.get("tid") == tid:
                return msg["addr"][0], int(msg["addr"][1])
    return None


def cmd_natcheck(args: argparse.Namespace) -> None:
    server, other_ip = args.server, args.other_ip
    p1, p2 = args.ports
    res: dict[str, Any] = {}
    # filtering, each on a fresh socket that has sent to server:p1 only
    res["from_same"] = _ask(_udp(), (server, p1)) is not None
    res["from_other_port"] = _ask(_udp(), (server, p1), reply_from="other_port") is not None
    res["from_other_ip"] = _ask(_udp(), (server, p1), reply_from="other_ip") is not None
    # a packet to a port this host never sent from (but on its public IP)
    quiet = _udp()
    quiet.settimeout(0.3)
    _ask(_udp(), (server, p1), tries=1, to_port=quiet.getsockname()[1])
    try:
        quiet.recvfrom(2048)
        res["unsolicited"] = True
    except (TimeoutError, ConnectionRefusedError):
        res["unsolicited"] = False
    # mapping: one socket, three destinations
    s = _udp()
    mapped = [_ask(s, (server, p1)), _ask(s, (server, p2)), _ask(s, (other_ip, p1))]
    res["local_port"] = s.getsockname()[1]
    res["mapped"] = [list(m) if m else None for m in mapped]
    ports = [m[1] for m in mapped if m]
    res["mapping"] = (
        "unknown"
        if len(ports) < 3
        else "endpoint-independent"
        if len(set(ports)) == 1
        else "address-dependent"
        if ports[0] == ports[1]
        else "address-and-port-dependent"
    )
    res["port_preserved"] = bool(ports) and ports[0] == res["local_port"]
    res["filtering"] = (
        "endpoint-independent"
        if res["from_other_ip"]
        else "address-dependent"
        if res["from_other_port"]
        else "address-and-port-dependent"
    )
    _out(res)


# -- hole punch ---------------------------------------------------------------------------------------------


def cmd_punch(args: argparse.Namespace) -> None:
    s = _udp(("0.0.0.0", args.port))
    s.settimeout(0.1)
    rdv = _addr(args.rdv)
    res: dict[str, Any] = {"name": args.name, "ok": False}
    peer: tuple[str, int] | None = None
    t0 = time.monotonic()
    while peer is None and time.monotonic() - t0 < args.secs:
        s.sendto(json.dumps({"op": "reg", "room": args.room, "name": args.name}).encode(), rdv)
        try:
            data, _src = s.recvfrom(2048)
        except (TimeoutError, ConnectionRefusedError):
            continue
        msg = json.loads(data)
        if msg.get("op") == "peer":
            peer = (msg["peer"][0], int(msg["peer"][1]))
            res["you_public"] = msg["you"]
            res["peer_public"] = msg["peer"]
    if peer is None:
        _out(res)
        return
    s.settimeout(0.02)
    t1 = time.monotonic()
    sent = 0
    got_from: tuple[str, int] | None = None
    confirmed = False
    while time.monotonic() - t1 < args.secs and not (got_from and confirmed):
        s.sendto(json.dumps({"op": "punch", "from": args.name, "seen": got_from is not None}).encode(), peer)
        sent += 1
        try:
            while True:
                data, src = s.recvfrom(2048)
                msg = json.loads(data)
                if msg.get("op") != "punch":
                    continue
                if got_from is None:
                    res["first_rx_s"] = round(time.monotonic() - t1, 3)
                got_from = src
                if src != peer:
                    res["peer_reflexive"] = list(src)
                    peer = src
                if msg.get("seen"):
                    confirmed = True
        except (TimeoutError, BlockingIOError):
            pass
        except ConnectionRefusedError:
            res["icmp_refused"] = res.get("icmp_refused", 0) + 1
    res["time_s"] = round(time.monotonic() - t1, 3)
    if got_from:  # the peer may still be waiting for our confirmation
        for _ in range(5):
            s.sendto(json.dumps({"op": "punch", "from": args.name, "seen": True}).encode(), peer)
            time.sleep(0.02)
    res.update(ok=bool(got_from and confirmed), sent=sent, rx_from=list(got_from) if got_from else None)
    _out(res)


# -- conntrack expiry, rtt ----------------------------------------------------------------------------------


def cmd_expiry(args: argparse.Namespace) -> None:
    s = _udp()
    got = _ask(s, _addr(args.server), tries=1, wait=args.delay + args.wait, delay=args.delay)
    _out({"got": got is not None, "delay": args.delay})


def cmd_rtt(args: argparse.Namespace) -> None:
    s = _udp()
    rtts = []
    for _ in range(args.count):
        t = time.monotonic()
        if _ask(s, _addr(args.server), tries=1, wait=args.wait) is not None:
            rtts.append(time.monotonic() - t)
    _out({"ok": len(rtts), "count": args.count, "median": statistics.median(rtts) if rtts else None})


def cmd_send(args: argparse.Namespace) -> None:
    s = _udp(_addr(args.bind))
    s.sendto(b"unsolicited", _addr(args.to))
    _out({"sent": True})


def cmd_ask(args: argparse.Namespace) -> None:
    s = _udp(("0.0.0.0", args.port))
    got = _ask(s, _addr(args.server), tries=3, wait=0.5)
    _out({"local_port": s.getsockname()[1], "mapped": list(got) if got else None})


# -- birthday-paradox punch through a symmetric NAT ------------------------------------------------------------


def cmd_hard(args: argparse.Namespace) -> None:
    easy = _addr(args.easy)
    socks = [_udp() for _ in range(args.n)]
    for s in socks:
        s.setblocking(False)
        s.sendto(b"open", easy)  # each socket gets its own random public port towards `easy`
    _out({"ready": True, "sockets": len(socks)})
    t0 = last = time.monotonic()
    while time.monotonic() - t0 < args.secs:
        ready, _, _ = select.select(socks, [], [], 0.1)
        for s in ready:
            try:
                data, src = s.recvfrom(2048)
            except (BlockingIOError, ConnectionRefusedError):
                continue
            if data.startswith(b"probe"):
                for _ in range(5):
                    s.sendto(b"ack", src)
                    time.sleep(0.01)
                _out({"ok": True, "probe": data.decode(), "time_s": round(time.monotonic() - t0, 3)})
                return
        if time.monotonic() - last > 1.0:  # keep the mappings alive
            for s in socks:
                s.sendto(b"open", easy)
            last = time.monotonic()
    _out({"ok": False})


def cmd_easy(args: argparse.Namespace) -> None:
    s = _udp(("0.0.0.0", args.port))
    s.setblocking(False)
    ports = random.sample(range(args.lo, args.hi + 1), args.k)
    res: dict[str, Any] = {"ok": False, "probes": args.k}
    t0 = time.monotonic()
    deadline = None
    i = 0
    while True:
        if i < len(ports):
            i += 1
            s.sendto(b"probe %d" % i, (args.hard_ip, ports[i - 1]))
            if i % 8 == 0:
                time.sleep(0.002)  # about 4000 probes/s
        elif deadline is None:
            deadline = time.monotonic() + 0.5
        elif time.monotonic() > deadline:
            break
        else:
            time.sleep(0.01)
        try:
            data, src = s.recvfrom(2048)
        except (BlockingIOError, ConnectionRefusedError):
            continue
        if data == b"ack":
            res = {
                "ok": True,
                "probes_sent": i,
                "hit_port": src[1],
                "time_s": round(time.monotonic() - t0, 3),
            }
            break
    _out(res)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("stun")
    q.add_argument("--ips", nargs="+", required=True)
    q.add_argument("--ports", nargs="+", type=int, default=[3478, 3479])
    q.add_argument("--secs", type=float, default=60.0)
    q.set_defaults(func=cmd_stun)
    q = sub.add_parser("natcheck")
    q.add_argument("--server", required=True)
    q.add_argument("--other-ip", required=True)
    q.add_argument("--ports", nargs=2, type=int, default=[3478, 3479])
    q.set_defaults(func=cmd_natcheck)
    q = sub.add_parser("punch")
    q.add_argument("--rdv", required=True)
    q.add_argument("--room", required=True)
    q.add_argument("--name", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--secs", type=float, default=3.0)
    q.set_defaults(func=cmd_punch)
    q = sub.add_parser("expiry")
    q.add_argument("--server", required=True)
    q.add_argument("--delay", type=float, required=True)
    q.add_argument("--wait", type=float, default=0.5)
    q.set_defaults(func=cmd_expiry)
    q = sub.add_parser("rtt")
    q.add_argument("--server", required=True)
    q.add_argument("--count", type=int, default=5)
    q.add_argument("--wait", type=float, default=2.0)
    q.set_defaults(func=cmd_rtt)
    q = sub.add_parser("send")
    q.add_argument("--bind", required=True)
    q.add_argument("--to", required=True)
    q.set_defaults(func=cmd_send)
    q = sub.add_parser("ask")
    q.add_argument("--port", type=int, default=0)
    q.add_argument("--server", required=True)
    q.set_defaults(func=cmd_ask)
    q = sub.add_parser("hard")
    q.add_argument("--easy", required=True)
    q.add_argument("--n", type=int, default=256)
    q.add_argument("--secs", type=float, default=10.0)
    q.set_defaults(func=cmd_hard)
    q = sub.add_parser("easy")
    q.add_argument("--hard-ip", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--k", type=int, default=4096)
    q.add_argument("--lo", type=int, default=1024)
    q.add_argument("--hi", type=int, default=65535)
    q.set_defaults(func=cmd_easy)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
