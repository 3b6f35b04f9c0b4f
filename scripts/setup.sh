#!/usr/bin/env bash
# Install peerdht (editable) into a virtual environment, .venv in the repository root, made here if missing:
# Debian 12 / Ubuntu 24.04's python3 refuses `pip install` outside one (PEP 668, externally-managed-environment),
# and a venv works the same with any other python3 >= 3.11 (pyenv, python.org builds).
#
# Usage: bash scripts/setup.sh [--dry-run] [EXTRAS]
#   bash scripts/setup.sh          # pip install -e .         -> then .venv/bin/peerdht demo
#   bash scripts/setup.sh test     # pip install -e '.[test]' (scripts/test.sh does this)
#   --dry-run                      # print the decisions and commands, change nothing
# Sourced (`. scripts/setup.sh test`) it also puts .venv/bin first on PATH for the rest of the caller.
# Environment: PYTHON (default python3) is the interpreter the venv is made from.

_peerdht_setup() {
  local dry=0 extras="" root py venv
  while [ $# -gt 0 ]; do
    case "$1" in
      --dry-run) dry=1 ;;
      -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}"; return 0 ;;
      *) extras="$1" ;;
    esac
    shift
  done
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="$root/.venv"
  py="${PYTHON:-python3}"
  _run() { echo "+ $*" >&2; [ "$dry" = 1 ] || "$@"; }

  if ! command -v "$py" >/dev/null 2>&1; then
    echo "setup: $py not found: install Python 3.11 or newer (Debian/Ubuntu: apt-get install python3 python3-venv)" >&2
    return 1
  fi
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: peerdht needs Python 3.11 or newer; $py is $("$py" -c 'import sys; print(sys.version.split()[0])')" >&2
    return 1
  fi

  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    # Debian splits venv's pip bootstrap (ensurepip) into python3-venv: without it `python3 -m venv`
    # leaves a venv without pip behind. Find out first, in a throw-away directory.
    local probe ok=1
    probe="$(mktemp -d)"
    "$py" -m venv "$probe/v" >/dev/null 2>&1 && "$probe/v/bin/python" -m pip --version >/dev/null 2>&1 || ok=0
    rm -rf "$probe"
    if [ "$ok" = 0 ]; then
      local pkg="python3-venv"
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: '$py -m venv' does not work: installing Debian's $pkg" >&2
        _run apt-get update -qq
        _run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"
        if [ "$dry" = 0 ] && ! "$py" -m ensurepip --version >/dev/null 2>&1; then
          # python3-venv matches Debian's python3; another python3 earlier on PATH needs its own venv support
          echo "setup: '$py -m venv' still does not work: install the venv support of $(command -v "$py")" >&2
          return 1
        fi
      else
        echo "setup: '$py -m venv' does not work: install Debian's $pkg package first:" >&2
        echo "  sudo apt-get install $pkg" >&2
        echo "then run this again." >&2
        return 1
      fi
    fi
    _run rm -rf "$venv"
    _run "$py" -m venv "$venv"
  else
    echo "setup: using $venv" >&2
  fi
  local target="$root"
  [ -z "$extras" ] || target="${root}[${extras}]"
  _run "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$target"
  export VIRTUAL_ENV="$venv"
  case ":$PATH:" in *":$venv/bin:"*) ;; *) export PATH="$venv/bin:$PATH" ;; esac
  echo "setup: peerdht installed in $venv (run .venv/bin/peerdht, or '. .venv/bin/activate' first)" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  _peerdht_setup "$@"
else
  _peerdht_setup "$@"
fi
