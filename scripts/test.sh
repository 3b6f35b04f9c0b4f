#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run all checks and tests.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # iproute2/nftables/iptables for the network-namespace tests; node + npm for the JS interop peers;
  # chromium for the browser tests (driven by Playwright, no browser download)
  need=()
  for p in iproute2 nftables iptables nodejs chromium; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  if ! command -v npm >/dev/null; then need+=(npm); fi
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
fi

python3 -m pip install -q -e '.[test,bench]'
# --ignore-scripts: bittorrent-tracker's optional node-datachannel would download a binary at install time;
# every peer we run ships its native parts as prebuilt packages (udx-native, sodium-native, @roamhq/wrtc)
npm ci --ignore-scripts --no-audit --no-fund --silent

ruff check src tests bench tools scripts
mypy
python3 -m pytest -q -p no:cacheprovider "$@"
