"""Every module imports on its own in a fresh interpreter (catches import cycles that test order hides),
and no sans-IO core imports asyncio, socket, time or random at run time."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import peerdht

SRC = Path(peerdht.__file__).resolve().parent
MODULES = sorted(
    m.name for m in pkgutil.walk_packages([str(SRC)], prefix="peerdht.") if m.name != "peerdht.__main__"
)
CORE_PACKAGES = ("encoding", "kademlia", "hyper", "mainline", "secure", "udx", "holepunch", "relay", "web", "tracker")
IO_MODULES = {"asyncio", "socket", "time", "random"}


def test_each_module_imports_alone() -> None:
    script = (
        "import importlib, subprocess, sys\n"
        "bad = []\n"
        "for name in sys.argv[1:]:\n"
        "    r = subprocess.run([sys.executable, '-c', 'import ' + name], capture_output=True, text=True)\n"
        "    if r.returncode:\n"
        "        bad.append(name + ': ' + r.stderr.strip().splitlines()[-1])\n"
        "print('\\n'.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *MODULES], capture_output=True, text=True, timeout=300
    )
    assert out.stdout.strip() == "", out.stdout


def _runtime_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:  # module level only; `if TYPE_CHECKING:` blocks are skipped
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_cores_do_no_io() -> None:
    offenders = {}
    for package in CORE_PACKAGES:
        for path in (SRC / package).glob("**/*.py") if (SRC / package).is_dir() else []:
            bad = _runtime_imports(path) & IO_MODULES
            if bad:
                offenders[str(path.relative_to(SRC))] = sorted(bad)
    assert offenders == {}
