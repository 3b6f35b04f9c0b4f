"""The compiled build (setup.py, mypyc) and its switches in peerdht/_build.py.

``PEERDHT_EXPECT_COMPILED=1`` (scripts/test.sh sets it when it built with mypyc) makes the first test check that
every module of ``COMPILED_MODULES`` really imports compiled, so a build that silently fell back to pure Python
does not pass as compiled.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from peerdht import _build

SO = importlib.machinery.EXTENSION_SUFFIXES[0]


def _run(code: str, **env: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


REPORT = (
    "import json, peerdht, peerdht.kademlia.lookup as m; from peerdht import _build; "
    "print(json.dumps({'compiled': _build.compiled_modules(), 'file': m.__file__}))"
)


def test_compiled_build_when_expected() -> None:
    got = _run(REPORT, PEERDHT_PURE_PYTHON="")
    if os.environ.get("PEERDHT_EXPECT_COMPILED") == "1":
        assert got["compiled"] == list(_build.COMPILED_MODULES)
        assert str(got["file"]).endswith(SO)
    else:
        assert set(got["compiled"]) <= set(_build.COMPILED_MODULES)  # type: ignore[arg-type]


def test_pure_python_switch_imports_sources() -> None:
    got = _run(REPORT, PEERDHT_PURE_PYTHON="1")
    assert got["compiled"] == []
    assert str(got["file"]).endswith("lookup.py")


def _package(tmp_path: Path, so_age: float) -> Path:
    """A directory with ``table.py`` and a (dummy) compiled ``table`` whose mtime is ``so_age`` seconds
    before the source's."""
    (tmp_path / "table.py").write_text("X = 1\n")
    so = tmp_path / ("table" + SO)
    so.write_bytes(b"")
    now = time.time()
    os.utime(tmp_path / "table.py", (now, now))
    os.utime(so, (now - so_age, now - so_age))
    return tmp_path


def test_source_edited_after_build_is_imported_with_a_warning(tmp_path: Path) -> None:
    finder = _build._SourceFinder(everything=False)
    path = [str(_package(tmp_path, so_age=60))]
    with pytest.warns(RuntimeWarning, match="newer than its compiled build"):
        spec = finder.find_spec("peerdht.kademlia.table", path)
    assert spec is not None and spec.origin == str(tmp_path / "table.py")


def test_up_to_date_build_and_other_modules_are_left_to_the_normal_finders(tmp_path: Path) -> None:
    finder = _build._SourceFinder(everything=False)
    path = [str(_package(tmp_path, so_age=-60))]  # built after the source
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert finder.find_spec("peerdht.kademlia.table", path) is None
        assert finder.find_spec("peerdht.kademlia.nothing", path) is None  # not a compiled module
    (tmp_path / "table.py").unlink()
    assert finder.find_spec("peerdht.kademlia.table", path) is None  # no source here: the normal finders


def test_pure_python_finder_takes_every_peerdht_module(tmp_path: Path) -> None:
    finder = _build._SourceFinder(everything=True)
    path = [str(_package(tmp_path, so_age=-60))]
    spec = finder.find_spec("peerdht.kademlia.table", path)
    assert spec is not None and spec.origin == str(tmp_path / "table.py")
    assert finder.find_spec("nacl.table", path) is None  # only peerdht's own modules


def test_version_says_which_build() -> None:
    def version(**env: str) -> str:
        cmd = [sys.executable, "-m", "peerdht", "--version"]
        return subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=60).stdout

    assert version(PEERDHT_PURE_PYTHON="1").strip().endswith("(pure Python)")
    if os.environ.get("PEERDHT_EXPECT_COMPILED") == "1":
        assert "compiled with mypyc: peerdht.kademlia.lookup" in version(PEERDHT_PURE_PYTHON="")
