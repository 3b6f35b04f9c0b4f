"""A NAT lab in Linux network namespaces: public hosts, and private hosts behind NATs of each classic type.

The lab builds, with ``ip netns``, veth pairs and one bridge, a small internet that exists only inside
namespaces it created (nothing is added to the namespace it is called from)::

    public host "boot" (203.0.113.10) ─┐
    public host "stun" (203.0.113.11) ─┼─ bridge "br0" in namespace <lab>-inet (the "public internet")
    NAT router r1 (wan 203.0.113.201) ─┘
      └─ bridge "lan" 10.0.1.1 ─┬─ private host "alice" (10.0.1.2, default route via 10.0.1.1)
                                └─ private host "carol" (10.0.1.3), added with ``behind="alice"``

Public addresses are in TEST-NET-3 (203.0.113.0/24, RFC 5737), LANs in 10.0.N.0/24. Each private host sits
behind a NAT router namespace (its own, or shared with ``behind=``) whose type is one of :class:`NatType`,
built with nftables. The rules follow the recipe in ``research/peers.md`` §3b, which was checked with an
RFC 5780-style classifier:

===================== =========================== ================================================
type                  mapping / filtering (RFC     rules (in the router's namespace)
                      4787)
===================== =========================== ================================================
full cone             endpoint-independent / EI    masquerade; inbound UDP to a public port mapped
                                                   recently is DNATed to its internal host:port
restricted cone       EI / address-dependent       masquerade; inbound UDP from an IP that public
                                                   port has sent to is DNATed likewise
port-restricted cone  EI / address+port-dep.       masquerade; conntrack does the filtering
symmetric             address+port-dependent /     ``masquerade fully-random``: a random port per
                      address+port-dependent       destination
===================== =========================== ================================================

Every router also drops UDP that arrives on its WAN for the router itself (the *input-drop rule*). Without
it, an unsolicited packet that reaches the router's own input path gets a confirmed conntrack entry; a later
outbound packet of the host then collides with that entry, masquerade picks a new source port, and a cone NAT
behaves like a symmetric one (``research/peers.md`` §3b, pitfall "conntrack port clash").

Linux keeps an unreplied UDP conntrack entry for ``nf_conntrack_udp_timeout`` = 30 s and a replied one for
``nf_conntrack_udp_timeout_stream`` = 120 s; both are per namespace, and ``udp_timeout=`` of
:meth:`Lab.add_private` sets them (and the lifetime of the cone mappings) for one router, so tests can
watch a mapping expire in a second or two.

Names are unique per lab: every namespace is called ``<prefix>-<pid>-<hex>-<role>``, so parallel and
aborted runs never collide, and :func:`sweep` removes the namespaces of labs whose process is gone.
:class:`Lab` is a context manager whose exit always tears everything down (processes it started in its
namespaces are killed first; an ``atexit`` hook covers a lab left open at interpreter exit).

Needs root, ``ip`` (iproute2) and ``nft`` (nftables). Loss is done with nftables; delay with ``tc``'s
netem qdisc where the kernel has it (:func:`netem_available`), else with a userspace delay line
(:mod:`tools.delayline`) spliced into the link (see :meth:`Lab.netem`). This module is I/O by
nature (it runs commands); it never opens a socket itself.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import ipaddress
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from tools.delayline import DelayLineError, DelayLineProcess, start_delay_line

__all__ = [
    "DEFAULT_PREFIX",
    "PUBLIC_NET",
    "Host",
    "Lab",
    "LabError",
    "NatType",
    "lab_ids",
    "netem_available",
    "sweep",
    "unavailable_reason",
]

DEFAULT_PREFIX = "pdl"
"""Prefix of every namespace a lab creates (``pdl-<pid>-<hex>-<role>``)."""

PUBLIC_NET = ipaddress.IPv4Network("203.0.113.0/24")
"""The lab's "public internet" (TEST-NET-3, RFC 5737): documentation addresses, only inside namespaces."""

_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_NS_RE = re.compile(r"^(?P<prefix>[a-z]+)-(?P<pid>[0-9]+)-(?P<hex>[0-9a-f]+)-(?P<role>[a-z0-9]+)$")
_CMD_TIMEOUT = 20.0


class LabError(Exception):
    """A lab command failed (the message holds the command and its stderr)."""


class NatType(enum.StrEnum):
    """The classic NAT types (RFC 3489 names; RFC 4787 mapping/filtering behaviour in each docstring)."""

    FULL_CONE = "full-cone"
    """Endpoint-independent mapping and filtering: once mapped, anyone may send to the mapped port."""
    RESTRICTED_CONE = "restricted-cone"
    """Endpoint-independent mapping, address-dependent filtering: only IPs the host has sent to."""
    PORT_RESTRICTED_CONE = "port-restricted-cone"
    """Endpoint-independent mapping, address-and-port-dependent filtering (a typical home router)."""
    SYMMETRIC = "symmetric"
    """Address-and-port-dependent mapping (a random port per destination) and filtering."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Host:
    """One host of a lab.

    Attributes:
        name: the name given to :meth:`Lab.add_public` / :meth:`Lab.add_private`.
        netns: the host's network namespace (pass it to ``ip netns exec``).
        ip: the host's own IPv4 address (a 203.0.113.x for public hosts, 10.0.N.2 behind a NAT).
        public_ip: the address the internet sees: ``ip`` for a public host, the router's WAN address
            for a private one.
        nat: the NAT type in front of the host, or ``None`` for a public host.
        router_netns: the NAT router's namespace, or ``None`` for a public host.
        extra_ips: further addresses of a public host (e.g. for RFC 5780 "other address" tests).
    """

    name: str
    netns: str
    ip: str
    public_ip: str
    nat: NatType | None = None
    router_netns: str | None = None
    extra_ips: tuple[str, ...] = ()


@dataclass(kw_only=True, slots=True)
class _Router:
    netns: str
    index: int
    wan_ip: str
    lan_prefix: str
    hosts: list[str]
    nat: NatType
    udp_timeout: float | None
    bridge_port: str
    input_drop: bool


@dataclass(kw_only=True, slots=True)
class _Link:
    """The two ends of a host's (or router's) link to the bridge: (namespace, interface) each."""

    near: tuple[str, str]
    far: tuple[str, str]


def unavailable_reason() -> str | None:
    """Say why a lab cannot be built here, or return ``None`` if it can.

    Checks that we are root, that ``ip`` and ``nft`` exist, and that a throwaway namespace can be
    made and given an nftables NAT table (then deletes it).

    Returns:
        A one-line human-readable reason, or ``None``.
    """
    if os.geteuid() != 0:
        return "the NAT lab needs root (network namespaces); run as root, e.g. in CI"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"`{tool}` not found: apt-get install {package}"
    name = f"{DEFAULT_PREFIX}-{os.getpid()}-{os.urandom(3).hex()}-probe"
    try:
        proc = _ip("netns", "add", name, check=False)
        if proc.returncode != 0:
            return f"`ip netns add` failed: {proc.stderr.strip()}"
        probe = "table ip probe {\n chain post {\n type nat hook postrouting priority srcnat;\n masquerade\n }\n}\n"
        proc = _cmd(["ip", "netns", "exec", name, "nft", "-f", "-"], input=probe, check=False)
        if proc.returncode != 0:
            return f"nftables NAT unavailable in a namespace: {proc.stderr.strip()}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"network namespaces unavailable: {exc}"
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            _ip("netns", "del", name, check=False)
    return None


_NETEM: list[bool] = []


def netem_available() -> bool:
    """Whether ``tc qdisc ... netem`` works on this kernel (tried once, in a throwaway namespace).

    Some VM kernels are built without ``CONFIG_NET_SCH_NETEM`` (or there is no ``tc``); :meth:`Lab.netem`
    then adds delay with a userspace delay line (:mod:`tools.delayline`) instead.
    """
    if not _NETEM:
        name = f"{DEFAULT_PREFIX}-{os.getpid()}-{os.urandom(3).hex()}-netem"
        ok = False
        if _ip("netns", "add", name, check=False).returncode == 0:
            try:
                proc = _cmd(
                    [
                        "ip",
                        "netns",
                        "exec",
                        name,
                        "tc",
                        "qdisc",
                        "add",
                        "dev",
                        "lo",
                        "root",
                        "netem",
                        "delay",
                        "1ms",
                    ],
                    check=False,
                )
                ok = proc.returncode == 0
            finally:
                _ip("netns", "del", name, check=False)
        _NETEM.append(ok)
    return _NETEM[0]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _cmd(["ip", *args], check=check)


def _cmd(
    argv: Sequence[str], *, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, input=input, timeout=_CMD_TIMEOUT, check=False
    )
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)!r} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _list_netns() -> list[str]:
    proc = _ip("netns", "list", check=False)
    # lines look like "name" or "name (id: 3)"
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_netns_processes(netns: str) -> None:
    proc = _ip("netns", "pids", netns, check=False)
    for word in proc.stdout.split():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.kill(int(word), signal.SIGKILL)


def _delete_netns(names: Sequence[str]) -> None:
    for name in names:
        _kill_netns_processes(name)
    for name in names:
        _ip("netns", "del", name, check=False)


def lab_ids(prefix: str = DEFAULT_PREFIX) -> dict[str, list[str]]:
    """List the labs that exist on this machine.

    Args:
        prefix: the namespace prefix labs were created with.

    Returns:
        ``{lab id: [namespace, ...]}``; a lab id is ``<prefix>-<pid>-<hex>``.
    """
    labs: dict[str, list[str]] = {}
    for name in _list_netns():
        m = _NS_RE.match(name)
        if m and m["prefix"] == prefix:
            labs.setdefault(f"{prefix}-{m['pid']}-{m['hex']}", []).append(name)
    return labs


def sweep(prefix: str = DEFAULT_PREFIX, *, everything: bool = False) -> list[str]:
    """Delete the namespaces of stale labs (those whose creating process no longer exists).

    Processes still running inside those namespaces are killed first.

    Args:
        prefix: the namespace prefix labs were created with.
        everything: also delete labs whose process is alive (for ``natlab.py down --all``).

    Returns:
        The deleted namespace names.
    """
    gone: list[str] = []
    for lab_id, names in lab_ids(prefix).items():
        pid = int(lab_id.split("-")[1])
        if everything or not _pid_alive(pid):
            _delete_netns(names)
            gone.extend(names)
    return gone


def _nft_ruleset(router: _Router) -> str:
    """The nftables ruleset of one NAT router (``research/peers.md`` §3b, cone filters keyed per mapping).

    After source NAT, a filter chain records every outbound UDP mapping: ``fc`` maps the public port to the
    internal host and port (patchbay's "fullcone" map, keyed by the port as translated, so it stays right
    with several hosts; the internal end is the flow's original source, or for a reply to an inbound
    flow its reply source), ``c_a`` holds (remote IP, public port) pairs for address-dependent filtering. The
    cone types DNAT inbound packets through ``fc``; a packet that matches no mapping and no conntrack entry
    reaches the router's input hook and is dropped there (the input-drop rule).
    """
    timeout = max(1, round(router.udp_timeout)) if router.udp_timeout is not None else 120
    pre = ""
    post = 'oifname "wan" masquerade'
    via_map = "dnat ip addr . port to udp dport map @fc"
    if router.nat is NatType.FULL_CONE:
        # only ports mapped recently are open (to anyone): EIM + EIF
        pre = f'iifname "wan" meta l4proto udp {via_map}'
    elif router.nat is NatType.RESTRICTED_CONE:
        pre = f'iifname "wan" meta l4proto udp ip saddr . udp dport @c_a {via_map}'
    elif router.nat is NatType.SYMMETRIC:
        post = 'oifname "wan" masquerade fully-random'
    # PORT_RESTRICTED_CONE: plain masquerade, conntrack filters by remote IP and port
    drop = 'iifname "wan" meta l4proto udp drop' if router.input_drop else ""
    return f"""
table ip natlab {{
  map fc {{ type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout {timeout}s; }}
  set c_a {{ type ipv4_addr . inet_service; flags dynamic,timeout; timeout {timeout}s; }}
  chain lab_map {{
    type filter hook postrouting priority srcnat + 50; policy accept;
    oifname "wan" meta l4proto udp ct direction original update @fc {{ udp sport : ct original ip saddr . ct original proto-src }}
    oifname "wan" meta l4proto udp ct direction reply update @fc {{ udp sport : ct reply ip saddr . ct reply proto-src }}
    oifname "wan" meta l4proto udp update @c_a {{ ip daddr . udp sport }}
  }}
  chain lab_in {{
    type filter hook input priority filter; policy accept;
    {drop}
  }}
  chain lab_pre {{
    type nat hook prerouting priority dstnat; policy accept;
    {pre}
  }}
  chain lab_post {{
    type nat hook postrouting priority srcnat; policy accept;
    {post}
  }}
}}
"""


@dataclass(kw_only=True)
class _State:
    hosts: dict[str, Host] = field(default_factory=dict)
    routers: dict[str, _Router] = field(default_factory=dict)  # by private host name
    links: dict[str, _Link] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    next_public: int = 10
    next_extra: int = 100
    next_router: int = 1
    loss: dict[str, float] = field(default_factory=dict)
    delay_lines: dict[str, DelayLineProcess] = field(default_factory=dict)  # by bridge port name


class Lab:
    """A NAT lab: a bridge "internet", public hosts, and private hosts behind NAT routers.

    Use it as a context manager; leaving the block (normally or by an exception) always tears it down::

        with Lab() as lab:
            boot = lab.add_public("boot")
            alice = lab.add_private("alice", NatType.SYMMETRIC, loss=0.01)
            server = lab.popen(boot, ["python3", "-m", "peerdht", "testnet", "--host", boot.ip, "--json"])
            lab.run(alice, ["python3", "-m", "peerdht", "lookup", "--bootstrap", "203.0.113.10:PORT", "T"])

    Args:
        prefix: namespace prefix (lowercase letters); :func:`sweep` finds stale labs by it.
        suffix: the random part of the lab id, as lowercase hex (default: 6 hex digits from ``os.urandom``).
    """

    def __init__(self, *, prefix: str = DEFAULT_PREFIX, suffix: str | None = None) -> None:
        if not re.fullmatch(r"[a-z]+", prefix):
            raise ValueError("prefix must be lowercase letters")
        hexpart = suffix if suffix is not None else os.urandom(3).hex()
        if not re.fullmatch(r"[0-9a-f]+", hexpart):
            raise ValueError("suffix must be lowercase hex")
        self.id = f"{prefix}-{os.getpid()}-{hexpart}"
        """The lab id, ``<prefix>-<pid>-<hex>``; every namespace name starts with it."""
        self._state = _State()
        self._procs: list[subprocess.Popen[bytes] | subprocess.Popen[str]] = []
        self._started = False
        self._closed = False

    # -- lifetime -----------------------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Create the "internet" namespace and its bridge (called by ``__enter__``).

        Raises:
            LabError: a command failed (the partial lab is torn down first).
        """
        if self._started:
            return
        self._started = True
        atexit.register(self.close)
        try:
            inet = self._add_netns("inet")
            _ip("-n", inet, "link", "add", "br0", "type", "bridge")
            _ip("-n", inet, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Kill every process started in the lab and delete all its namespaces. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self._state.delay_lines.clear()  # their processes are in self._procs
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        # also whatever else we created with our id (e.g. a namespace added before a failure)
        names = set(self._state.namespaces) | set(lab_ids(self.id.split("-")[0]).get(self.id, []))
        _delete_netns(sorted(names))

    # -- topology -----------------------------------------------------------------------------------------

    @property
    def hosts(self) -> Mapping[str, Host]:
        """The hosts by name."""
        return dict(self._state.hosts)

    def __getitem__(self, name: str) -> Host:
        return self._state.hosts[name]

    def _add_netns(self, role: str) -> str:
        name = f"{self.id}-{role}"
        _ip("netns", "add", name)
        self._state.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def _check_new(self, name: str) -> None:
        if not self._started or self._closed:
            raise LabError("the lab is not running (use `with Lab() as lab:`)")
        if not _NAME_RE.match(name):
            raise ValueError("host names are 1-12 lowercase letters/digits, starting with a letter")
        if name in self._state.hosts or name == "inet" or re.fullmatch(r"r[0-9]+", name):
            raise ValueError(f"host name {name!r} is taken or reserved")

    def _public_address(self, index: int) -> str:
        if not 1 <= index <= 254:
            raise LabError("the lab's public /24 is full")
        return str(PUBLIC_NET.network_address + index)

    def _attach(self, netns: str, ifname: str, port: str) -> None:
        """Create a veth ``ifname`` in ``netns`` whose peer ``port`` joins the bridge."""
        inet = f"{self.id}-inet"
        _ip("link", "add", ifname, "netns", netns, "type", "veth", "peer", "name", port, "netns", inet)
        _ip("-n", inet, "link", "set", port, "master", "br0", "up")

    def add_public(
        self, name: str, *, extra_ips: int = 0, delay: float = 0.0, jitter: float = 0.0, loss: float = 0.0
    ) -> Host:
        """Add a host on the public segment (no NAT), e.g. a bootstrap node or a STUN-like server.

        Args:
            name: 1-12 lowercase letters/digits.
            extra_ips: how many further public addresses the host gets (``Host.extra_ips``).
            delay: one-way delay added in each direction of its link, seconds (see :meth:`netem`).
            jitter: delay variation, seconds.
            loss: probability of losing a packet, in each direction (0.0-1.0).

        Returns:
            The new host.

        Raises:
            ValueError: bad name. LabError: a command failed.
        """
        self._check_new(name)
        st = self._state
        netns = self._add_netns(name)
        ip = self._public_address(st.next_public)
        st.next_public += 1
        port = f"p-{name}"
        self._attach(netns, "eth0", port)
        _ip("-n", netns, "addr", "add", f"{ip}/24", "dev", "eth0")
        extras: list[str] = []
        for _ in range(extra_ips):
            extra = self._public_address(st.next_extra)
            st.next_extra += 1
            _ip("-n", netns, "addr", "add", f"{extra}/24", "dev", "eth0")
            extras.append(extra)
        _ip("-n", netns, "link", "set", "eth0", "up")
        host = Host(name=name, netns=netns, ip=ip, public_ip=ip, extra_ips=tuple(extras))
        st.hosts[name] = host
        st.links[name] = _Link(near=(netns, "eth0"), far=(f"{self.id}-inet", port))
        if delay or loss or jitter:
            self.netem(host, delay=delay, jitter=jitter, loss=loss)
        return host

    def add_private(
        self,
        name: str,
        nat: NatType | str | None = None,
        *,
        behind: Host | str | None = None,
        udp_timeout: float | None = None,
        input_drop: bool = True,
        delay: float = 0.0,
        jitter: float = 0.0,
        loss: float = 0.0,
    ) -> Host:
        """Add a host behind a NAT router: a new router of type ``nat``, or the router of host ``behind``.

        Hosts behind one router share a LAN (10.0.N.0/24, a bridge in the router's namespace) and its
        public address, so they can reach each other directly on LAN addresses. Give them distinct local
        ports if they must keep cone behaviour: Linux masquerade only keeps a port while the tuple is unique.

        Args:
            name: 1-12 lowercase letters/digits.
            nat: the new router's NAT type (a :class:`NatType` or its value, e.g. ``"symmetric"``); with
                ``behind``, ``None`` or the existing router's type.
            behind: join the LAN of this private host instead of getting a new router; the router options
                below then must keep their defaults.
            udp_timeout: if given, the router's conntrack UDP timeouts (unreplied and replied) and the
                lifetime of its cone mappings, seconds (Linux defaults: 30 and 120).
            input_drop: drop UDP from the WAN addressed to the router itself. Leave it on; ``False``
                exists only to demonstrate the conntrack port-clash pitfall (see the module docstring).
            delay: one-way delay added in each direction of the router's WAN link, seconds.
            jitter: delay variation, seconds.
            loss: probability of losing a packet on the WAN link, in each direction (0.0-1.0).

        Returns:
            The new host (``public_ip`` is the router's WAN address).

        Raises:
            ValueError: bad name or NAT type, or router options given with ``behind``.
            LabError: a command failed.
        """
        self._check_new(name)
        st = self._state
        if behind is not None:
            other = behind if isinstance(behind, str) else behind.name
            if other not in st.routers:
                raise ValueError(f"{other!r} is not a private host of this lab")
            router = st.routers[other]
            if nat is not None and NatType(nat) is not router.nat:
                raise ValueError(f"{other!r} is behind a {router.nat.value} NAT, not {NatType(nat).value}")
            if udp_timeout is not None or not input_drop or delay or jitter or loss:
                raise ValueError("router options cannot be given with behind=")
        else:
            if nat is None:
                raise ValueError("a NAT type is needed (or behind=)")
            router = self._add_router(NatType(nat), udp_timeout=udp_timeout, input_drop=input_drop)
        number = len(router.hosts) + 2
        if number > 254:
            raise LabError("the LAN is full")
        netns = self._add_netns(name)
        port = f"h{number}"
        ip = f"{router.lan_prefix}.{number}"
        _ip(
            "link", "add", "eth0", "netns", netns, "type", "veth", "peer", "name", port, "netns", router.netns
        )
        _ip("-n", router.netns, "link", "set", port, "master", "lan", "up")
        _ip("-n", netns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "route", "add", "default", "via", f"{router.lan_prefix}.1")
        router.hosts.append(name)
        st.routers[name] = router
        host = Host(
            name=name, netns=netns, ip=ip, public_ip=router.wan_ip, nat=router.nat, router_netns=router.netns
        )
        st.hosts[name] = host
        st.links[name] = _Link(near=(router.netns, "wan"), far=(f"{self.id}-inet", router.bridge_port))
        if delay or loss or jitter:
            self.netem(host, delay=delay, jitter=jitter, loss=loss)
        return host

    def _add_router(self, nat: NatType, *, udp_timeout: float | None, input_drop: bool) -> _Router:
        st = self._state
        index = st.next_router
        if index > 54:
            raise LabError("at most 54 NAT routers per lab")
        st.next_router += 1
        router_ns = self._add_netns(f"r{index}")
        wan_ip = self._public_address(200 + index)
        lan = f"10.0.{index}"
        port = f"p-r{index}"
        self._attach(router_ns, "wan", port)
        _ip("-n", router_ns, "addr", "add", f"{wan_ip}/24", "dev", "wan")
        _ip("-n", router_ns, "link", "set", "wan", "up")
        _ip("-n", router_ns, "link", "add", "lan", "type", "bridge")
        _ip("-n", router_ns, "addr", "add", f"{lan}.1/24", "dev", "lan")
        _ip("-n", router_ns, "link", "set", "lan", "up")
        _cmd(["ip", "netns", "exec", router_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        router = _Router(
            netns=router_ns,
            index=index,
            wan_ip=wan_ip,
            lan_prefix=lan,
            hosts=[],
            nat=nat,
            udp_timeout=udp_timeout,
            bridge_port=port,
            input_drop=input_drop,
        )
        self._load_nat(router)
        return router

    def _load_nat(self, router: _Router) -> None:
        ns = router.netns
        _cmd(["ip", "netns", "exec", ns, "nft", "flush", "ruleset"])
        _cmd(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=_nft_ruleset(router))
        if router.udp_timeout is not None:
            secs = str(max(1, round(router.udp_timeout)))
            for key in ("nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"):
                _cmd(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.netfilter.{key}={secs}"])

    def set_nat(self, host: Host | str, nat: NatType | str) -> Host:
        """Change the NAT type of a private host's router (for every host behind it); reloads its rules.

        Conntrack entries the router already has stay until they expire, so use fresh ports afterwards.

        Returns:
            The updated host (old :class:`Host` objects keep their old ``nat``).
        """
        name = host if isinstance(host, str) else host.name
        router = self._state.routers[name]
        router.nat = NatType(nat)
        self._load_nat(router)
        for member in router.hosts:
            old = self._state.hosts[member]
            self._state.hosts[member] = Host(
                name=old.name,
                netns=old.netns,
                ip=old.ip,
                public_ip=old.public_ip,
                nat=router.nat,
                router_netns=old.router_netns,
            )
        return self._state.hosts[name]

    def netem(self, host: Host | str, *, delay: float = 0.0, jitter: float = 0.0, loss: float = 0.0) -> None:
        """Set (or clear, with all zero) delay and loss on a host's link to the internet.

        The link of a private host is its router's WAN link, so all its internet traffic sees it. The
        settings apply in each direction, so the round trip over one link grows by ``2 * delay``. Each call
        replaces the link's previous settings.

        Loss uses an nftables ``numgen random`` drop rule on the link's bridge port (IPv4 only), so it works
        on any kernel. Delay and jitter use ``tc qdisc ... netem`` on both ends of the link where the kernel
        has netem (:func:`netem_available`). Elsewhere the link is spliced in the internet namespace: its
        bridge port ``p-X`` is renamed ``d-X`` and leaves the bridge, a new veth pair ``p-X``/``q-X`` takes
        its place (so the loss rule, keyed by the port name, still applies), and a delay line
        (:mod:`tools.delayline`) forwards frames between ``d-X`` and ``q-X`` after ``delay``
        (uniform ``± jitter``, which may reorder, as netem does). Clearing the delay stops the delay line and
        puts the original port back; :meth:`close` kills it with the lab.

        Args:
            host: the host or its name.
            delay: one-way delay per direction, seconds.
            jitter: delay variation, seconds (the delay is uniform in ``[delay - jitter, delay + jitter]``).
            loss: IPv4 packet loss probability per direction, 0.0-1.0.

        Raises:
            ValueError: a value out of range.
            LabError: a command failed, or the delay line did not start.
        """
        name = host if isinstance(host, str) else host.name
        link = self._state.links[name]
        if not (0.0 <= loss <= 1.0) or delay < 0 or jitter < 0:
            raise ValueError("loss must be in [0, 1], delay and jitter >= 0")
        if netem_available():
            for ns, dev in (link.near, link.far):
                _cmd(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"], check=False)
                if delay or jitter:
                    args = ["delay", f"{delay * 1000:.3f}ms"]
                    if jitter:
                        args.append(f"{jitter * 1000:.3f}ms")
                    _cmd(
                        ["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem", *args]
                    )
        else:
            self._delay_line(link, delay=delay, jitter=jitter)
        self._state.loss[link.far[1]] = loss
        self._load_loss()

    def _delay_line(self, link: _Link, *, delay: float, jitter: float) -> None:
        """Splice a delay line into ``link`` (or change or remove it); see :meth:`netem`."""
        inet, port = link.far
        tail = port[2:]
        detached, inner = f"d-{tail}", f"q-{tail}"
        old = self._state.delay_lines.pop(port, None)
        if old is not None:
            old.stop()
        if delay or jitter:
            if old is None:  # splice: p-X -> d-X (off the bridge), new pair p-X (bridge port) / q-X
                _ip("-n", inet, "link", "set", port, "nomaster")
                _ip("-n", inet, "link", "set", port, "down")
                _ip("-n", inet, "link", "set", port, "name", detached)
                _ip("-n", inet, "link", "add", port, "type", "veth", "peer", "name", inner)
                _ip("-n", inet, "link", "set", port, "master", "br0", "up")
            try:
                line = start_delay_line(detached, inner, netns=inet, delay=delay, jitter=jitter)
            except DelayLineError as exc:
                self._unsplice(inet, port, detached)
                raise LabError(str(exc)) from exc
            self._procs.append(line.proc)
            self._state.delay_lines[port] = line
        elif old is not None:
            self._unsplice(inet, port, detached)

    def _unsplice(self, inet: str, port: str, detached: str) -> None:
        _ip("-n", inet, "link", "del", port, check=False)  # and its peer q-X
        _ip("-n", inet, "link", "set", detached, "down")
        _ip("-n", inet, "link", "set", detached, "name", port)
        _ip("-n", inet, "link", "set", port, "master", "br0", "up")

    def _load_loss(self) -> None:
        inet = f"{self.id}-inet"
        rules = []
        for port, loss in sorted(self._state.loss.items()):
            if loss > 0:
                n = round(loss * 1_000_000)
                chance = f"numgen random mod 1000000 < {n} " if n < 1_000_000 else ""
                for direction in ("iifname", "oifname"):
                    rules.append(f'{direction} "{port}" meta protocol ip {chance}drop')
        body = "\n    ".join(rules)
        ruleset = f"""
table bridge natlab_loss {{
  chain lab_fwd {{
    type filter hook forward priority filter; policy accept;
    {body}
  }}
}}
"""
        _cmd(["ip", "netns", "exec", inet, "nft", "delete", "table", "bridge", "natlab_loss"], check=False)
        _cmd(["ip", "netns", "exec", inet, "nft", "-f", "-"], input=ruleset)

    # -- running things -----------------------------------------------------------------------------------

    def _netns_of(self, host: Host | str) -> str:
        if isinstance(host, Host):
            return host.netns
        if host in self._state.hosts:
            return self._state.hosts[host].netns
        name = f"{self.id}-{host}"
        if name in self._state.namespaces:  # e.g. "inet" or "r1"
            return name
        raise KeyError(host)

    def argv(self, host: Host | str, argv: Sequence[str]) -> list[str]:
        """The command line that runs ``argv`` inside ``host``'s namespace (``ip netns exec ...``)."""
        return ["ip", "netns", "exec", self._netns_of(host), *argv]

    def run(
        self,
        host: Host | str,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside a host (or ``"inet"``, or a router ``"r<N>"``) and wait for it.

        Args:
            host: the host, its name, or a lab namespace role.
            argv: the command.
            check: raise :class:`subprocess.CalledProcessError` on a non-zero exit.
            timeout: seconds before the command is killed (:class:`subprocess.TimeoutExpired`).
            input: text for its stdin.
            env: environment (default: inherited).

        Returns:
            The completed process, with text ``stdout``/``stderr``.
        """
        return subprocess.run(
            self.argv(host, argv),
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            check=check,
            env=dict(env) if env is not None else None,
        )

    def popen(
        self,
        host: Host | str,
        argv: Sequence[str],
        *,
        stdin: int | None = subprocess.PIPE,
        stdout: int | None = subprocess.PIPE,
        stderr: int | None = subprocess.PIPE,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[str]:
        """Start a command inside a host without waiting; the lab kills it on :meth:`close`.

        Returns:
            The process (pipes, if any, in text mode).
        """
        proc: subprocess.Popen[str] = subprocess.Popen(
            self.argv(host, argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            text=True,
            env=dict(env) if env is not None else None,
        )
        self._procs.append(proc)
        return proc

    # -- inspection ---------------------------------------------------------------------------------------

    def router_netns(self, host: Host | str) -> str:
        """The namespace of the NAT router in front of a private host."""
        name = host if isinstance(host, str) else host.name
        return self._state.routers[name].netns

    def conntrack(self, host: Host | str) -> list[str]:
        """The UDP conntrack entries of a private host's router (lines of ``/proc/net/nf_conntrack``)."""
        proc = _cmd(["ip", "netns", "exec", self.router_netns(host), "cat", "/proc/net/nf_conntrack"])
        return [line for line in proc.stdout.splitlines() if " udp " in f" {line} "]

    def udp_timeouts(self, host: Host | str) -> tuple[int, int]:
        """A private host's router's (unreplied, replied) UDP conntrack timeouts, seconds."""
        ns = self.router_netns(host)
        out = []
        for key in ("nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"):
            proc = _cmd(["ip", "netns", "exec", ns, "sysctl", "-n", f"net.netfilter.{key}"])
            out.append(int(proc.stdout.strip()))
        return out[0], out[1]

    def ruleset(self, host: Host | str) -> str:
        """The nftables ruleset of a private host's router, as ``nft list ruleset`` prints it."""
        return _cmd(["ip", "netns", "exec", self.router_netns(host), "nft", "list", "ruleset"]).stdout

    def namespaces(self) -> list[str]:
        """The names of the namespaces this lab created."""
        return list(self._state.namespaces)

    def describe(self) -> Iterator[str]:
        """One line per host: name, namespace, address, NAT type, public address."""
        for host in self._state.hosts.values():
            nat = host.nat.value if host.nat else "public"
            extra = f" +{','.join(host.extra_ips)}" if host.extra_ips else ""
            yield f"{host.name:12} {nat:21} {host.ip:15} public {host.public_ip}{extra}  netns {host.netns}"
