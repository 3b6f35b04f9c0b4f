"""Run every browser/WebRTC test file (``tests/web/test_*.py``) inside its own throw-away network namespace.

Each file becomes one pytest process under ``scripts/netns-run.sh`` (lo + a veth pair with both ends
inside, 198.51.100.2/24, default route), so Chromium, aiortc and the JS WebRTC peers only ever see that
namespace. The inner run's output is shown when it fails. Needs root, ``unshare`` and Debian chromium
(``scripts/test.sh`` installs it); without them the files are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "tests" / "web"
FILES = sorted(p.name for p in WEB.glob("test_*.py"))


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root for a network namespace (unshare -n)"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    if not Path("/usr/bin/chromium").exists():
        return "needs Debian chromium (apt-get install chromium; scripts/test.sh does it)"
    return None


@pytest.mark.web
@pytest.mark.parametrize("name", FILES)
def test_web_file_in_netns(name: str) -> None:
    why = _missing()
    if why:
        pytest.skip(why)
    cmd = [str(ROOT / "scripts" / "netns-run.sh"), sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-rs", f"tests/web/{name}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    out = proc.stdout[-20000:] + proc.stderr[-5000:]
    assert proc.returncode == 0, f"{name} failed inside the test namespace (rc={proc.returncode}):\n{out}"
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert "passed" in summary and "skipped" not in summary, f"{name}: nothing may skip inside the namespace:\n{out}"
