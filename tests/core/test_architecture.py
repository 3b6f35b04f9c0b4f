"""Architecture ratchet for src/peerdht (issue 13, "Done when").

Three rules, checked on the source with `ast` (no imports executed):

1. No import cycles among runtime imports. Imports under `if TYPE_CHECKING:` do not count; imports inside
   functions DO count. `from a import b` is an edge to `a.b` when that is a module, else to `a`.
   A violation is one edge `a -> b` whose two ends lie in the same strongly connected component.
2. No cross-module private access: `x._name` (one leading underscore, not a dunder) where `x` is not
   `self`/`cls` and the module does not itself define `_name` (a def, class, or assignment target of that
   name, including `self._name = ...` and class-body annotations). A violation is (file, `_name`) with
   its number of occurrences.
3. No file under src/ over 800 lines and no function over 100 lines. No generated tables are excepted
   today (the tree has none).

The tree violates these today, so each rule has an allowlist below. THE ALLOWLISTS MUST ONLY SHRINK:
the test fails on a violation that is not listed (or an occurrence count that grew) and on a listed
entry that no longer occurs (or whose count fell) -- delete or lower the entry in the same commit that
fixes the code, so the lists can never go stale.
"""

from __future__ import annotations

import ast
from pathlib import Path

import peerdht

SRC = Path(peerdht.__file__).resolve().parent
MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 100

# Rule 1 -- edges inside an import cycle. Must only shrink.
ALLOWED_CYCLE_EDGES: set[str] = set()

# Rule 2 -- "file: _name" -> occurrences. Must only shrink.
ALLOWED_PRIVATE_ACCESS: dict[str, int] = {
    "aio/web/webrtc.py: _connection": 1,
    "aio/web/webrtc.py: _nominated": 1,
}

# Rule 3 -- "file" (over 800 lines) or "file: qualname" (function over 100 lines). Must only shrink.
ALLOWED_LONG: set[str] = set()


# --------------------------------------------------------------------------------------------- helpers


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _rel(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` except those inside the body of an `if TYPE_CHECKING:` block."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.append(node.test)
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def _import_edges(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    edges: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    edges.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in modules:
                    edges.add(target)
                elif base in modules:
                    edges.add(base)
    edges.discard(name)
    return edges


def _sccs(graph: dict[str, set[str]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[set[str]] = []
    counter = 0

    def visit(v: str) -> None:  # recursion depth is bounded by the module count (~150)
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            result.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def cycle_edges() -> set[str]:
    modules = _modules()
    graph = {name: _import_edges(name, path, modules) for name, path in modules.items()}
    found: set[str] = set()
    for comp in _sccs(graph):
        if len(comp) > 1:
            found.update(f"{a} -> {b}" for a in comp for b in graph[a] if b in comp)
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.attr)
    return names


def private_access() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text())
        defined = _defined_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not _is_private(node.attr) or node.attr in defined:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            key = f"{_rel(path)}: {node.attr}"
            found[key] = found.get(key, 0) + 1
    return found


def _long_functions(node: ast.AST, prefix: str, rel: str, found: set[str]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            qual = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                end = child.end_lineno or child.lineno
                if end - child.lineno + 1 > MAX_FUNCTION_LINES:
                    found.add(f"{rel}: {qual}")
            _long_functions(child, qual + ".", rel, found)
        else:
            _long_functions(child, prefix, rel, found)


def long_code() -> set[str]:
    found: set[str] = set()
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > MAX_FILE_LINES:
            found.add(_rel(path))
        _long_functions(ast.parse(text), "", _rel(path), found)
    return found


def _ratchet(found: set[str], allowed: set[str], what: str) -> None:
    new = sorted(found - allowed)
    stale = sorted(allowed - found)
    msg = []
    if new:
        msg.append(f"new {what} (fix it; do not add it to the allowlist):\n  " + "\n  ".join(new))
    if stale:
        msg.append(f"fixed {what} still in the allowlist (delete these entries):\n  " + "\n  ".join(stale))
    assert not msg, "\n".join(msg)


# ----------------------------------------------------------------------------------------------- tests


def test_no_import_cycles() -> None:
    _ratchet(cycle_edges(), ALLOWED_CYCLE_EDGES, "import-cycle edges")


def test_no_cross_module_private_access() -> None:
    found = private_access()
    grown = sorted(f"{k} x{n} (allowed {ALLOWED_PRIVATE_ACCESS.get(k, 0)})" for k, n in found.items()
                   if n > ALLOWED_PRIVATE_ACCESS.get(k, 0))
    shrunk = sorted(f"{k} x{found.get(k, 0)} (allowed {n})" for k, n in ALLOWED_PRIVATE_ACCESS.items()
                    if found.get(k, 0) < n)
    msg = []
    if grown:
        msg.append("new private access (give the owner a public method):\n  " + "\n  ".join(grown))
    if shrunk:
        msg.append("fewer occurrences than allowed (lower or delete these entries):\n  " + "\n  ".join(shrunk))
    assert not msg, "\n".join(msg)


def test_no_long_files_or_functions() -> None:
    _ratchet(long_code(), ALLOWED_LONG, "files over 800 lines / functions over 100 lines")


def test_checker_sees_violations(tmp_path: Path) -> None:
    """The three detectors fire on small known inputs (a checker that cannot fail is a defect)."""
    tree = ast.parse("if TYPE_CHECKING:\n    import x\nimport y\ndef f():\n    import z\n")
    imported = {a.name for n in _runtime_nodes(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported == {"y", "z"}
    assert _sccs({"a": {"b"}, "b": {"a"}, "c": {"a"}}) in ([{"a", "b"}, {"c"}], [{"c"}, {"a", "b"}])
    tree = ast.parse("class A:\n    _mine: int\n\ndef g(o):\n    return o._mine, o._theirs, self._x, o.__dict__\n")
    defined = _defined_names(tree)
    hits = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and _is_private(n.attr)
            and n.attr not in defined and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"))]
    assert hits == ["_theirs"]
