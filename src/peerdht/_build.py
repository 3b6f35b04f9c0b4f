"""Which of peerdht's modules run compiled (mypyc), and the switch back to pure Python.

``setup.py`` compiles :data:`COMPILED_MODULES` with mypyc when it can (a C compiler and the Python headers);
the ``.py`` sources stay the reference and the fallback. Set ``PEERDHT_PURE_PYTHON=1`` in the environment to
import every peerdht module from its source even when a compiled build is installed (to compare the two, or
to rule the compiled build out when debugging). Standard library only: ``setup.py`` reads this file before
peerdht is installed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["COMPILED_MODULES", "compiled_modules", "install_source_finder", "pure_python_requested", "stale_sources"]

# Sans-IO modules on every datagram's path: the lookup engine and the routing table. Only modules whose
# classes no uncompiled code subclasses (an interpreted class cannot subclass a compiled one): so not
# kademlia/requests.py, whose PendingRequest hyper/rpc_types.py subclasses.
COMPILED_MODULES: tuple[str, ...] = (
    "peerdht.kademlia.lookup",
    "peerdht.kademlia.table",
)


def pure_python_requested() -> bool:
    """True when ``PEERDHT_PURE_PYTHON`` is set to ``1`` in the environment."""
    return os.environ.get("PEERDHT_PURE_PYTHON", "") == "1"


def stale_sources(package_dir: Path) -> list[Path]:
    """The sources of :data:`COMPILED_MODULES` under ``package_dir`` (the ``peerdht`` directory) that are
    newer than their compiled module: edited since the last compiled install. Modules without a compiled
    build are not listed."""
    out = []
    for name in COMPILED_MODULES:
        source = package_dir.joinpath(*name.split(".")[1:]).with_suffix(".py")
        built = [source.with_name(source.stem + s) for s in importlib.machinery.EXTENSION_SUFFIXES]
        mtimes = [b.stat().st_mtime for b in built if b.is_file()]
        if mtimes and source.is_file() and source.stat().st_mtime > max(mtimes):
            out.append(source)
    return out


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads ``peerdht.*`` modules from their ``.py`` source, ahead of the extension-module loader.

    ``everything``: every peerdht module (``PEERDHT_PURE_PYTHON=1``). Otherwise the modules of
    :data:`COMPILED_MODULES`, all of them, when any of their sources under ``package_dir`` is newer than its
    compiled build (an edit after an editable install; one warning), so a stale build never hides an edit.
    All of them: the compiled modules are one shared library whose modules import each other directly.
    """

    def __init__(self, everything: bool, package_dir: Path) -> None:
        self.everything = everything
        self.package_dir = package_dir
        self._stale: bool | None = None  # worked out at the first compiled module's import

    def _build_is_stale(self) -> bool:
        if self._stale is None:
            edited = stale_sources(self.package_dir)
            self._stale = bool(edited)
            if edited:
                warnings.warn(
                    f"peerdht: {', '.join(map(str, edited))} changed after the compiled build: importing "
                    f"{', '.join(COMPILED_MODULES)} from source (re-run scripts/setup.sh to compile again)",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return self._stale

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("peerdht.") or path is None:
            return None
        if not self.everything and (fullname not in COMPILED_MODULES or not self._build_is_stale()):
            return None  # the normal finders: a compiled build that is up to date, or a plain module
        leaf = fullname.rpartition(".")[2]
        for entry in path:
            source = Path(entry, leaf + ".py")
            if source.is_file():
                return importlib.util.spec_from_file_location(fullname, source)
        return None  # a package or a missing module: the normal finders decide


def install_source_finder() -> None:
    """Put the source finder first on ``sys.meta_path`` (idempotent): for every peerdht module when
    :func:`pure_python_requested`, else for compiled modules whose source was edited after the build."""
    if not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder(pure_python_requested(), Path(__file__).parent))


def compiled_modules() -> list[str]:
    """The names in :data:`COMPILED_MODULES` that import as compiled extensions here (``[]``: pure Python).

    Imports them if they are not imported yet.
    """
    out = []
    for name in COMPILED_MODULES:
        module = sys.modules.get(name) or importlib.import_module(name)
        origin = getattr(module, "__file__", None) or ""
        if origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            out.append(name)
    return out
