"""Which model the page uses, and the environment that makes it so (for fixtures and scripts).

The page picks its model itself (``core.default_name()``): the published weights when they
are on the machine (``$DR_WEIGHTS_DIR``, then the user's cache), otherwise the bundled model
(``idrid``, trained here on IDRiD photographs). ``model_env`` gives the environment in which it picks either one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAPER_FILE = "paper-eyepacs-qwk0814.pth.tar"
ENV = "DR_WEIGHTS_DIR"
BANNER = ": not for clinical use.**"  # the page's red banner above a model that is not the published one
BUNDLED = "idrid"  # the registry's fallback: the model a fresh clone runs on


def weights_dir() -> Path:
    """$DR_WEIGHTS_DIR, else the shared copy beside the repository."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    return (REPO / ".." / "shared" / "weights").resolve()


def find_paper_weights() -> Path | None:
    """The folder holding the published weights on this machine, or None."""
    d = weights_dir()
    if (d / PAPER_FILE).is_file():
        return d
    from core import weights as cw

    if (cw.cache_dir() / PAPER_FILE).is_file():  # downloaded earlier by the page or the CLI
        return cw.cache_dir()
    return None


@dataclass(frozen=True)
class PageModel:
    """The weights the page chooses by itself in an environment, and that environment."""

    name: str  # the registry name the page's core.default_name() gives: "idrid" or "paper"
    env: dict[str, str]  # what makes it so; a server process needs the same (dict(os.environ, **env))

    @property
    def bundled(self) -> bool:
        """A model of ours, not the published one: the page shows its red banner."""
        return self.name != "paper"


def model_env(name: str, scratch: Path, paper_dir: Path | None = None) -> dict[str, str]:
    """The environment in which the page picks ``name``: "paper" (its folder ``paper_dir``)
    or "idrid" (no published weights anywhere the page looks, as on a fresh clone)."""
    if name == "paper":
        if paper_dir is None:
            raise ValueError("the published weights' folder is needed")
        return {ENV: str(paper_dir)}
    if name != BUNDLED:
        raise ValueError(f"the page's model is {BUNDLED!r} or 'paper', not {name!r}")
    return {ENV: str(scratch / "no-weights"), "XDG_CACHE_HOME": str(scratch / "empty-cache")}
