"""The direction of imports inside core: the engine first, then synthetic data, then
training and the quality study, then the command line, which nothing else imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.import_graph import cycles, read_graph, upward

CORE = Path(__file__).resolve().parents[1] / "core"
# Layers, lowest first; a module may import its own layer or lower ones.
LAYERS = (
    ("core",),  # the engine: model, weights, fundus, propagation, transport, explanation, pictures, export, bench
    ("core.synthetic",),
    ("core.training",),
    ("core.study",),
    ("core.cli",),
    ("core.__main__",),
)


def rank(module: str) -> int:
    best = 0
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            best = i
    return best


def test_core_has_no_import_cycle():
    assert cycles(read_graph(CORE, "core")) == []


def test_core_imports_only_downwards():
    assert upward(read_graph(CORE, "core"), rank) == []


def test_nothing_but_main_imports_the_command_line():
    g = read_graph(CORE, "core")
    inside = lambda m: m == "core.cli" or m.startswith("core.cli.")  # noqa: E731
    users = sorted({a for a, bs in g.edges.items() for b in bs if inside(b) and not inside(a)})
    assert users == ["core.__main__"]


def test_no_private_name_crosses_a_module():
    assert read_graph(CORE, "core").private == []


def test_the_engine_never_imports_streamlit_or_the_viewer():
    for path in CORE.rglob("*.py"):
        text = path.read_text()
        assert "import streamlit" not in text and "from viewer" not in text and "import viewer" not in text, path


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / "pkg" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root / "pkg"


@pytest.mark.parametrize(
    ("files", "expect"),
    [
        ({"__init__.py": "", "a.py": "from . import b\n", "b.py": "def f():\n    from .a import x\n"}, "cycle"),
        ({"__init__.py": "", "low.py": "from .high.mod import f\n", "high/__init__.py": "", "high/mod.py": "def f(): pass\n"}, "upward"),
        ({"__init__.py": "", "a.py": "from .b import _helper\n", "b.py": "def _helper(): pass\n"}, "private"),
        ({"__init__.py": "", "a.py": "from . import b\nb._helper()\n", "b.py": "def _helper(): pass\n"}, "private"),
        ({"__init__.py": "", "a.py": "from .b import helper\n", "b.py": "def helper(): pass\n"}, None),
    ],
)
def test_the_checker_finds_what_it_forbids(tmp_path, files, expect):
    g = read_graph(_tree(tmp_path, files), "pkg")
    found = {
        "cycle": bool(cycles(g)),
        "upward": bool(upward(g, lambda m: 1 if m.startswith("pkg.high") else 0)),
        "private": bool(g.private),
    }
    assert found == {k: k == expect for k in found}
