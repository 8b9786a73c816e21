"""Reads the import graph of a package from its source (no imports executed) and says
what breaks the house rules: cycles, imports against the layer order, private names
taken from another module, and imports of the command line from the library.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Graph:
    package: str
    modules: set[str] = field(default_factory=set)
    edges: dict[str, set[str]] = field(default_factory=dict)  # importer -> imported modules
    private: list[str] = field(default_factory=list)  # "importer: module._name"


def _module_name(root: Path, path: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _resolve(importer: str, is_package: bool, level: int, module: str | None) -> str:
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def read_graph(root: Path, package: str) -> Graph:
    """The graph of every ``.py`` file under ``root`` (the folder of ``package``)."""
    g = Graph(package)
    files = {_module_name(root, p, package): p for p in sorted(root.rglob("*.py"))}
    g.modules = set(files)

    def known(name: str) -> str | None:
        while name and name not in g.modules:
            name = name.rpartition(".")[0]
        return name or None

    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        targets: set[str] = set()
        bound: dict[str, str] = {}  # local name -> module it refers to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == package or alias.name.startswith(package + "."):
                        mod = known(alias.name)
                        if mod:
                            targets.add(mod)
                            bound[alias.asname or alias.name.split(".")[0]] = mod if alias.asname else package
            elif isinstance(node, ast.ImportFrom):
                src = _resolve(name, is_package, node.level, node.module) if node.level else (node.module or "")
                if not (src == package or src.startswith(package + ".")):
                    continue
                for alias in node.names:
                    sub = f"{src}.{alias.name}"
                    if sub in g.modules:  # from pkg import module
                        targets.add(sub)
                        bound[alias.asname or alias.name] = sub
                        continue
                    mod = known(src)
                    if mod:
                        targets.add(mod)
                        if alias.name.startswith("_") and not alias.name.startswith("__") and mod != name:
                            g.private.append(f"{name}: {mod}.{alias.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                g.private.append(f"{name}: {bound[node.value.id]}.{node.attr}")
        targets.discard(name)
        g.edges[name] = targets
    return g


def cycles(g: Graph) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(g.modules):
        if v not in index:
            visit(v)
    return out


def upward(g: Graph, rank: Callable[[str], int]) -> list[str]:
    """Imports of a module of a higher layer than the importer's."""
    return sorted(f"{a} -> {b}" for a, bs in g.edges.items() for b in bs if rank(b) > rank(a))
