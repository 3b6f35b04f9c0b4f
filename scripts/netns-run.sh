#!/usr/bin/env bash
# Run a command in a fresh, throw-away network namespace: lo plus a veth pair with both ends inside,
# the TEST-NET address 198.51.100.2/24 on one end and a default route through it. Chromium gathers no
# ICE candidates on loopback alone; with this it gathers 198.51.100.2, and nothing the command sends can
# leave the namespace (the veth's peer end is inside it too). Needs root (unshare -n). The namespace
# goes away when the command exits.
# Usage: scripts/netns-run.sh COMMAND [ARGS...]
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "netns-run.sh: needs root (unshare -n makes the network namespace)" >&2
  exit 77
fi
exec unshare -n sh -c '
  set -e
  ip link set lo up
  ip link add pdw0 type veth peer name pdw1
  ip addr add 198.51.100.2/24 dev pdw0
  ip addr add 198.51.100.3/24 dev pdw1
  ip link set pdw0 up
  ip link set pdw1 up
  ip route add default via 198.51.100.3 dev pdw0 2>/dev/null || ip route add default dev pdw0
  sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
  export PEERDHT_TEST_NETNS=1
  exec "$@"' sh "$@"
