"""Where the network, the propagation and the transport run: ``cpu``, ``cuda[:N]`` or ``auto``.

Nothing needs a GPU: ``auto`` is the CPU on a machine without one, and asking for ``cuda``
where there is none is refused in one line before anything is loaded. The arithmetic is
the same code on every device; the maps come back to the CPU as NumPy arrays.
"""

from __future__ import annotations

import os

import torch

from .errors import OptionError

CHOICES_HELP = "cpu, cuda, cuda:N or auto (a CUDA GPU when there is one, else the CPU)"
ENV_DEVICE = "DR_DEVICE"


class DeviceError(OptionError):
    """A device that this machine does not have, or a name that is not a device."""


def resolve(name: str | torch.device | None = None) -> torch.device:
    """The torch device for ``name``; None reads $DR_DEVICE, else the CPU.

    A CUDA device turns TF32 off: float32 must mean float32 there too (TF32's 10-bit
    mantissa would move the maps by ~1e-3 and conservation with them).
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name is None:
        name = os.environ.get(ENV_DEVICE, "").strip() or "cpu"
    text = name.strip().lower()
    if text == "auto":
        return resolve("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        index = text.partition(":")[2]
        if index and not index.isdigit():
            raise DeviceError(f"device {name!r}: expected {CHOICES_HELP}")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"device {name!r}: this machine has no CUDA GPU (cpu or auto run anywhere)")
        if index and int(index) >= count:
            raise DeviceError(f"device {name!r}: this machine has {count} CUDA GPU(s), numbered from 0")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return torch.device(text)
    raise DeviceError(f"device {name!r}: expected {CHOICES_HELP}")


def describe(device: torch.device) -> str:
    """A short human name: ``cpu`` or ``cuda:0 (NVIDIA H200)``."""
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
