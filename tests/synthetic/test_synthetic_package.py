"""The layout of core.synthetic: its modules import one way, never a private name of
another, and the package still offers every name that others import from it."""

from __future__ import annotations

import ast
from pathlib import Path

import core
from core import synthetic

PACKAGE = Path(synthetic.__file__).parent
ORDER = ("grading", "anatomy", "lesions", "camera", "generator", "sheets", "__init__")


def _imports(name: str) -> list[ast.ImportFrom]:
    tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
    return [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]


def test_every_module_is_in_the_order() -> None:
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == sorted(ORDER)


def test_modules_import_only_public_names_from_lower_modules() -> None:
    for rank, name in enumerate(ORDER):
        for node in _imports(name):
            if node.level == 2:  # the rest of core, e.g. ``from ..model import INPUT_SIZE``
                assert node.module and not node.module.startswith("synthetic"), (name, node.module)
            else:
                assert node.level == 1 and node.module in ORDER[:rank], (name, node.module)
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, (name, node.module, private)


def test_the_public_names_are_still_there() -> None:
    for n in ("LESION_TYPES", "QUADRANTS", "SIZE", "MASK_ALPHA", "OVERLAY_COLOURS", "SyntheticFundus",
              "generate", "generate_many", "grade_from_lesions", "grade_of", "image_seed", "overlay",
              "save_overview", "save_samples"):
        assert n in synthetic.__all__ and hasattr(synthetic, n), n
    assert synthetic.SIZE == core.INPUT_SIZE == 640
    assert synthetic.MASK_ALPHA == 0.25
