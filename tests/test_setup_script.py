"""scripts/setup.sh, the README's command 1 and the install step of scripts/test.sh (issue 12 item 1):
a .venv in the repository root, made with python3 -m venv; where Debian's python3-venv is missing it
says exactly what to install (or, as root with apt-get, installs it). These tests drive its decisions
with --dry-run and stand-in programs; the real installs were run by hand in fresh clones (see the
commit message)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_PY = sys.executable

NO_VENV_PYTHON = f"""#!/bin/sh
# python3 as on Debian without python3-venv: `-m venv` fails (ensurepip missing), all else works
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  echo "The virtual environment was not created successfully because ensurepip is not available." >&2
  exit 1
fi
exec {REAL_PY} "$@"
"""


def _tree(tmp_path: Path, *, uid: int, python: str | None = None) -> tuple[Path, dict[str, str]]:
    """A repository copy holding only scripts/setup.sh, and a PATH with stand-ins for id, apt-get, python3."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stand_ins = {
        "id": f"#!/bin/sh\n[ \"$1\" = -u ] && echo {uid} && exit 0\nexec /usr/bin/id \"$@\"\n",
        "apt-get": "#!/bin/sh\necho \"apt-get stand-in called: $*\" >&2\nexit 0\n",
        "python3": python or f"#!/bin/sh\nexec {REAL_PY} \"$@\"\n",
    }
    for name, text in stand_ins.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    return repo, env


def _setup(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(repo / "scripts" / "setup.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_missing_venv_as_a_normal_user_says_what_to_install(tmp_path: Path) -> None:
    repo, env = _tree(tmp_path, uid=1000, python=NO_VENV_PYTHON)
    out = _setup(repo, env)
    assert out.returncode == 1
    assert "install Debian's python3-venv package first" in out.stderr
    assert "sudo apt-get install python3-venv" in out.stderr
    assert "Traceback" not in out.stderr and "apt-get stand-in" not in out.stderr
    assert not (repo / ".venv").exists()  # no broken half-made venv left behind


def test_missing_venv_as_root_installs_python3_venv(tmp_path: Path) -> None:
    repo, env = _tree(tmp_path, uid=0, python=NO_VENV_PYTHON)
    out = _setup(repo, env, "--dry-run", "test")
    assert out.returncode == 0, out.stderr
    assert "+ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv" in out.stderr
    assert f"+ python3 -m venv {repo}/.venv" in out.stderr
    assert f"-e {repo}[test]" in out.stderr
    assert not (repo / ".venv").exists()  # --dry-run changes nothing


def test_plan_with_a_working_python(tmp_path: Path) -> None:
    repo, env = _tree(tmp_path, uid=1000)
    out = _setup(repo, env, "--dry-run")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("+ ")]
    assert lines == [
        f"+ rm -rf {repo}/.venv",
        f"+ python3 -m venv {repo}/.venv",
        f"+ {repo}/.venv/bin/python -m pip install -q --disable-pip-version-check -e {repo}",
    ]


def test_an_existing_venv_is_reused(tmp_path: Path) -> None:
    repo, env = _tree(tmp_path, uid=1000)
    subprocess.run([REAL_PY, "-m", "venv", str(repo / ".venv")], check=True, timeout=120)
    out = _setup(repo, env, "--dry-run", "web")
    assert out.returncode == 0, out.stderr
    assert "setup: using" in out.stderr and "-m venv" not in out.stderr
    assert f"-e {repo}[web]" in out.stderr


def test_old_python_is_named(tmp_path: Path) -> None:
    old = "#!/bin/sh\ncase \"$*\" in *version_info*) exit 1;; *'print(sys.version'*) echo 3.9.2;; esac\n"
    repo, env = _tree(tmp_path, uid=1000, python=old)
    out = _setup(repo, env)
    assert out.returncode == 1 and "needs Python 3.11 or newer; python3 is 3.9.2" in out.stderr


@pytest.mark.skipif(not os.path.exists("/bin/bash"), reason="bash")
def test_sourcing_puts_the_venv_first_on_path(tmp_path: Path) -> None:
    repo, env = _tree(tmp_path, uid=1000)
    script = f". {repo}/scripts/setup.sh --dry-run >/dev/null 2>&1; echo \"$PATH\"; echo \"$VIRTUAL_ENV\""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    path, venv = out.stdout.splitlines()
    assert path.split(":")[0] == f"{repo}/.venv/bin" and venv == f"{repo}/.venv"


def test_readme_and_test_sh_install_through_setup_sh() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/setup.sh && .venv/bin/peerdht demo" in readme  # command 1
    assert "\nbash scripts/test.sh\n" in readme  # command 2
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    assert "\n. scripts/setup.sh test" in test_sh
    commands = [line for line in test_sh.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in commands if "pip " in line]  # nothing goes into the (externally managed) system python
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci
