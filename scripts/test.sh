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

# .venv with peerdht[test,bench]; sourced, so its bin (python3, ruff, mypy, pytest) comes first on PATH.
# setup.py compiles the cores' hot modules with mypyc when a C compiler and the Python headers are there
# (pure Python otherwise); where they are, a failed compile fails the run, and the suite checks that the
# modules really import compiled (tests/core/test_build.py), then runs tests/core once more as pure Python.
py_include="$(${PYTHON:-python3} -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
if command -v gcc >/dev/null && [ -f "$py_include/Python.h" ]; then
  export PEERDHT_COMPILE=1 PEERDHT_EXPECT_COMPILED=1
else
  echo "test.sh: no gcc or no $py_include/Python.h: testing the pure-Python build only" >&2
fi
# shellcheck source=scripts/setup.sh
. scripts/setup.sh test,bench
python3 -c 'from peerdht import _build; print("peerdht: compiled modules:", _build.compiled_modules() or "none")'
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
if [ "${PEERDHT_EXPECT_COMPILED:-}" = 1 ] && [ $# -eq 0 ]; then
  # the pure-Python fallback (what a machine without a C compiler runs): the sans-IO cores' tests again
  PEERDHT_PURE_PYTHON=1 PEERDHT_EXPECT_COMPILED=0 python3 -m pytest -q -p no:cacheprovider tests/core
fi
