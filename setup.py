"""Optional compiled build of the DHT cores' hot modules with mypyc; everything else is in pyproject.toml.

The modules in ``COMPILED`` are plain, fully typed Python (mypy --strict): mypyc turns them into C extensions
that import in place of the ``.py`` files, with the same behaviour. The pure-Python source stays the fallback
and the reference: without a C compiler and the Python headers (Debian: ``gcc`` and ``python3-dev``), or with
``PEERDHT_COMPILE=0``, nothing is compiled and peerdht runs as plain Python. ``PEERDHT_COMPILE=1`` makes a
failed compile an error instead of a fallback. ``PEERDHT_PURE_PYTHON=1`` at run time ignores a compiled build
(see ``peerdht/__init__.py``). Why: the HyperDHT client path is ~25 Python calls per reply with no single
frame above 7 % (docs/performance.md section 2); compiling them is what is left to go below the JS client.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

# The module list lives in src/peerdht/_build.py (peerdht reports from it which modules run compiled).
_NAMES = runpy.run_path(str(Path(__file__).parent / "src" / "peerdht" / "_build.py"))["COMPILED_MODULES"]
COMPILED = ["src/" + name.replace(".", "/") + ".py" for name in _NAMES]


def _can_compile() -> tuple[bool, str]:
    flag = os.environ.get("PEERDHT_COMPILE", "")
    if flag == "0":
        return False, "PEERDHT_COMPILE=0"
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return False, "mypyc is not installed in the build environment"
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").exists():
        return False, f"no Python headers ({include}/Python.h; Debian: apt-get install python3-dev)"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return False, f"no C compiler ({cc}; Debian: apt-get install gcc)"
    return True, ""


def _remove_compiled() -> None:
    """Delete the extension modules an earlier compiled editable install left in ``src/``: they would still be
    imported in place of the sources."""
    root = Path(__file__).parent / "src"
    for name in COMPILED:
        module = root.parent / name
        for built in module.parent.glob(module.stem + ".*.so"):
            built.unlink()
    for shared in root.glob("*__mypyc.*.so"):
        shared.unlink()


def _ext_modules() -> list[object]:
    ok, why = _can_compile()
    if not ok:
        _remove_compiled()
        if os.environ.get("PEERDHT_COMPILE") == "1":
            raise SystemExit(f"peerdht: PEERDHT_COMPILE=1 but cannot compile: {why}")
        print(f"peerdht: pure-Python build ({why})", file=sys.stderr)
        return []
    from mypyc.build import mypycify

    # Own mypy options, not pyproject's: the build environment has none of peerdht's dependencies, and
    # scripts/test.sh runs the strict check of the whole package; here only the compiled modules must check.
    options = ["--config-file", os.devnull, "--ignore-missing-imports", "--follow-imports", "silent"]
    return list(mypycify([*options, *COMPILED], opt_level="3", debug_level="0"))


class _BuildExt(build_ext):
    """Falls back to the pure-Python build when the C compile fails (unless ``PEERDHT_COMPILE=1``)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # CompileError, LinkError, a missing tool: the sources still work
            if os.environ.get("PEERDHT_COMPILE") == "1":
                raise
            for out in self.get_outputs():  # a half-built set must not shadow the sources
                Path(out).unlink(missing_ok=True)
            print(f"peerdht: pure-Python build (the C compile failed: {e})", file=sys.stderr)


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": _BuildExt})
