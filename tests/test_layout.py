"""The house's layout, read from the imports: paper rooms never import each other, the shared floor imports no
paper, no module imports another's _private name, and no import circle."""

from __future__ import annotations

import ast
from pathlib import Path

from repro.papers import PAPERS

PACKAGE = Path(__file__).resolve().parents[1] / "repro"
# the roof: the package root (it registers the papers), the registry of papers, and the commands that reach
# every paper (the command line, the bench entry, the smoke run, the GPU check)
ROOF = {"repro", "repro.__main__", "repro.papers", "repro.cli", "repro.bench", "repro.smoke", "repro.gpu_check"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.startswith("repro")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("repro") and not node.level:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def edges(name: str) -> set[str]:
    """The kit's modules `name` imports (a name taken from a package that is itself a module counts as that)."""
    out = set()
    for module, names in imports(MODULES[name]):
        subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
        out.update(subs or [module])
        if subs and len(subs) < len(names):
            out.add(module)
    return {m for m in out if m in MODULES and m != name}


def room(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PAPERS else None


def test_paper_rooms_import_the_floor_never_each_other():
    crossings = [
        (name, target)
        for name in MODULES
        if room(name)
        for target in edges(name)
        if room(target) not in (None, room(name)) or target in ROOF
    ]
    assert crossings == []


def test_the_shared_floor_imports_no_paper_and_no_roof():
    upward = [
        (name, target)
        for name in MODULES
        if room(name) is None and name not in ROOF
        for target in edges(name)
        if room(target) or target in ROOF
    ]
    assert upward == []


def test_no_module_imports_a_private_name_of_another():
    private = [
        (name, module, taken)
        for name, path in MODULES.items()
        for module, names in imports(path)
        for taken in names
        if taken.startswith("_") and not taken.startswith("__") and module != name
    ]
    assert private == []


def test_no_import_circle():
    graph = {name: edges(name) for name in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []
