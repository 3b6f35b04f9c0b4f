#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run all checks and tests.
# Usage: bash scripts/test.sh [extra pytest args]
# Python packages go into .venv in the repository root (scripts/setup.sh makes it): Debian 12 / Ubuntu 24.04's
# python3 refuses pip installs outside a virtual environment. As root it also installs the Debian packages
# below and the network-namespace tests run; as a normal user it says what it skips and runs the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

# iproute2/nftables/iptables for the network-namespace tests; node + npm for the JS interop peers;
# chromium for the browser tests (driven by Playwright, no browser download)
debs=(iproute2 nftables iptables nodejs chromium)
need=()
for p in "${debs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ! command -v npm >/dev/null; then need+=(npm); fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
else
  echo "test.sh: not root: Debian packages are not installed${need[*]:+ (missing: ${need[*]}; as root: apt-get install ${need[*]})}" \
    "and the network-namespace and browser tests are skipped; run as root for everything" >&2
fi

# .venv with peerdht[test,bench]; sourced, so its bin (python3, ruff, mypy, pytest) comes first on PATH
# shellcheck source=scripts/setup.sh
. scripts/setup.sh test,bench
if command -v npm >/dev/null; then
  # --ignore-scripts: bittorrent-tracker's optional node-datachannel would download a binary at install time;
  # every peer we run ships its native parts as prebuilt packages (udx-native, sodium-native, @roamhq/wrtc)
  npm ci --ignore-scripts --no-audit --no-fund --silent
else
  echo "test.sh: npm not found: the JS interop tests are skipped (install node and npm, e.g. apt-get install nodejs npm)" >&2
fi

ruff check src tests bench tools scripts
mypy
python3 -m pytest -q -p no:cacheprovider "$@"
