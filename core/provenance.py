"""How a result was made, for the files that record it (checkpoint cards, study reports):
the command that started the process and the machine it ran on, without the machine's
folder layout."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path


def command_line(default: str = "") -> str:
    """The ``python -m core ...`` command that started this process, or ``default`` when
    core was called from Python. Absolute paths are shown relative to the working folder,
    or by their name alone when they lie outside it."""
    if not sys.argv or Path(sys.argv[0]).name != "__main__.py" or Path(sys.argv[0]).parent.name != "core":
        return default
    parts = []
    for a in sys.argv[1:]:
        if os.path.isabs(a):
            rel = os.path.relpath(a)
            a = Path(a).name if rel.startswith("..") else rel
        parts.append(a)
    return shlex.join(["python", "-m", "core", *parts])


def machine(cuda: bool = False) -> str:
    """What ran it, in words: the CPU count and, when CUDA was used, the GPU."""
    text = f"{os.cpu_count()} CPUs"
    if cuda:
        import torch

        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    return text
