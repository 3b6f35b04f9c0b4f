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


def _package(tmp_path: Path, so_age: dict[str, float]) -> Path:
    """A ``peerdht``-like directory with ``kademlia/lookup.py`` and ``kademlia/table.py`` and (dummy) compiled
    builds of them, each ``so_age[leaf]`` seconds older than its source."""
    pkg = tmp_path / "kademlia"
    pkg.mkdir()
    now = time.time()
    for leaf in ("lookup", "table"):
        (pkg / f"{leaf}.py").write_text("X = 1\n")
        (pkg / f"{leaf}{SO}").write_bytes(b"")
        os.utime(pkg / f"{leaf}.py", (now, now))
        age = so_age[leaf]
        os.utime(pkg / f"{leaf}{SO}", (now - age, now - age))
    return tmp_path


def test_an_edit_after_the_build_imports_every_compiled_module_from_source(tmp_path: Path) -> None:
    # the compiled modules are one shared library that imports its modules directly: one edited source
    # means all of them come from source, or the compiled ones would reject the source module's classes
    root = _package(tmp_path, {"lookup": -60, "table": 60})  # table.py edited after the build
    assert _build.stale_sources(root) == [root / "kademlia" / "table.py"]
    finder = _build._SourceFinder(False, root)
    path = [str(root / "kademlia")]
    with pytest.warns(RuntimeWarning, match="changed after the compiled build"):
        spec = finder.find_spec("peerdht.kademlia.lookup", path)
    assert spec is not None and spec.origin == str(root / "kademlia" / "lookup.py")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once
        spec = finder.find_spec("peerdht.kademlia.table", path)
    assert spec is not None and spec.origin == str(root / "kademlia" / "table.py")
    assert finder.find_spec("peerdht.kademlia.ops", path) is None  # not a compiled module


def test_an_up_to_date_build_is_left_to_the_normal_finders(tmp_path: Path) -> None:
    root = _package(tmp_path, {"lookup": -60, "table": -60})  # both built after their sources
    assert _build.stale_sources(root) == []
    finder = _build._SourceFinder(False, root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert finder.find_spec("peerdht.kademlia.table", [str(root / "kademlia")]) is None
    for leaf in ("lookup", "table"):  # no compiled build at all: nothing is stale
        (root / "kademlia" / f"{leaf}{SO}").unlink()
    assert _build.stale_sources(root) == []


def test_pure_python_finder_takes_every_peerdht_module(tmp_path: Path) -> None:
    root = _package(tmp_path, {"lookup": -60, "table": -60})
    finder = _build._SourceFinder(True, root)
    spec = finder.find_spec("peerdht.kademlia.table", [str(root / "kademlia")])
    assert spec is not None and spec.origin == str(root / "kademlia" / "table.py")
    assert finder.find_spec("nacl.table", [str(root / "kademlia")]) is None  # only peerdht's own modules


def test_version_says_which_build() -> None:
    def version(**env: str) -> str:
        cmd = [sys.executable, "-m", "peerdht", "--version"]
        return subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=60).stdout

    assert version(PEERDHT_PURE_PYTHON="1").strip().endswith("(pure Python)")
    if os.environ.get("PEERDHT_EXPECT_COMPILED") == "1":
        assert "compiled with mypyc: peerdht.kademlia.lookup" in version(PEERDHT_PURE_PYTHON="")
