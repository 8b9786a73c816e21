"""Weights as data: a registry of named checkpoints, found, fetched and verified.

Each entry carries where its file comes from, its full sha256, what it was
trained on and how its input must be normalised; the code reads ``meta`` keys,
underscored keys are documentation. A user's own checkpoint is a path.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .model import DRNet, count_parameters

ENV_DIR = "DR_WEIGHTS_DIR"
ASSETS = Path(__file__).resolve().parent.parent / "assets"


class WeightsError(ValueError):
    """A checkpoint that cannot be found, fetched, verified or loaded (one-line message)."""


@dataclass(frozen=True)
class Normalisation:
    """Per-channel input normalisation applied to RGB scaled to [0, 1]."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_tensor(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 tensor as the network expects."""
        x = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return ((x - mean) / std).unsqueeze(0)

    def as_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


IMAGENET = Normalisation((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    filename: str
    sha256: str
    normalisation: Normalisation
    meta: Mapping[str, Any] = field(default_factory=dict)
    url: str | None = None
    size: int | None = None
    bundled: Path | None = None  # shipped with the project (our own weights only)


PAPER = WeightsEntry(
    name="paper",
    filename="paper-eyepacs-qwk0814.pth.tar",
    sha256="730173b044540b24c3c7c150248f624a728de2c6167d0baed1e46ffb49b9a206",
    size=1_563_182,
    url=(
        "https://github.com/jorditg/CS-AI-PhD-Docs/raw/main/2018-RETICLASS5/"
        "programa/models/ret6_bn/model_best-QWKval0814.pth.tar"
    ),
    normalisation=IMAGENET,
    meta={
        "title": "Published weights of de la Torre, Valls & Puig (2017/2020)",
        "num_params": 385_877,
        "widths": None,
        "training_data": "EyePACS (Kaggle 2015), re-split by patient: 75,650 train / 3,000 validation / 10,000 test",
        "metrics": {
            "validation_quadratic_weighted_kappa": 0.814,
            "test_quadratic_weighted_kappa": 0.801,
            "messidor2_quadratic_weighted_kappa": 0.832,
            "referable_dr_sensitivity_test": 0.906,
            "referable_dr_specificity_test": 0.847,
        },
        "licence": "none stated by the author; research use",
        "intended_use": (
            "Research on interpretable DR grading. Not a medical device: it must not be "
            "used to diagnose or to decide treatment."
        ),
        "clinical_use": False,
        "_source": "GitHub jorditg/CS-AI-PhD-Docs, 2018-RETICLASS5/programa/models/ret6_bn",
        "_paper": "Neurocomputing 396 (2020) 465-476; arXiv 1712.08107",
    },
)

REGISTRY: dict[str, WeightsEntry] = {PAPER.name: PAPER}
DEFAULT = "paper"


def register(entry: WeightsEntry) -> None:
    REGISTRY[entry.name] = entry


def cache_dir() -> Path:
    """Per-user cache for downloaded weights (XDG convention)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dr-grader" / "weights"


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get(ENV_DIR):
        dirs.append(Path(os.environ[ENV_DIR]).expanduser())
    dirs.append(cache_dir())
    return dirs


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, sha256: str) -> None:
    """Raise WeightsError unless the file's full sha256 is the expected one."""
    actual = sha256_of(path)
    if actual != sha256:
        raise WeightsError(f"{path.name}: sha256 mismatch (expected {sha256[:12]}..., got {actual[:12]}...): file altered or incomplete")


def locate(entry: WeightsEntry) -> Path | None:
    """The file of ``entry`` if it is on this machine (weights dir, cache or bundled)."""
    candidates = [d / entry.filename for d in search_dirs()]
    if entry.bundled is not None:
        candidates.append(entry.bundled)
    return next((p for p in candidates if p.is_file()), None)


def is_available(name: str) -> bool:
    return name in REGISTRY and locate(REGISTRY[name]) is not None


def fetch(name: str, *, progress: Callable[[int, int | None], None] | None = None, timeout: float = 30.0) -> Path:
    """Download entry ``name`` into the cache, verify its sha256, return its path.

    ``progress(done, total)`` is called as bytes arrive. The file appears in the
    cache only once complete and verified.
    """
    entry = _entry(name)
    found = locate(entry)
    if found is not None:
        verify(found, entry.sha256)
        return found
    if entry.url is None:
        raise WeightsError(f"weights '{name}' have no download address and are not on this machine")
    dest = cache_dir() / entry.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=dest.parent)
    try:
        try:
            with urllib.request.urlopen(entry.url, timeout=timeout) as r, os.fdopen(fd, "wb") as out:
                total = int(r.headers.get("Content-Length") or 0) or entry.size
                done = 0
                while chunk := r.read(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise WeightsError(
                f"cannot download '{name}' (offline? {reason}); get it from {entry.url} "
                f"and put it in {cache_dir()} or in ${ENV_DIR}"
            ) from None
        verify(Path(tmp), entry.sha256)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


@dataclass
class LoadedModel:
    """A network in eval mode with what is needed to use and cite it."""

    network: DRNet
    name: str
    sha256: str
    normalisation: Normalisation
    meta: Mapping[str, Any]
    path: Path

    @property
    def is_synthetic(self) -> bool:
        """Trained on synthetic images only: never for clinical use."""
        return bool(self.meta.get("synthetic", False))


def _entry(name: str) -> WeightsEntry:
    if name not in REGISTRY:
        raise WeightsError(f"unknown weights '{name}'; known: {', '.join(sorted(REGISTRY))}, or a file path")
    return REGISTRY[name]


def _widths_from_state(state: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    keys = [f"features.{i}.weight" for i in (0, 3, 7, 10, 14, 17, 21, 24, 28, 31, 35, 38, 42, 45)]
    keys.append("classifier.0.weight")
    try:
        return tuple(int(state[k].shape[0]) for k in keys)
    except (KeyError, AttributeError, IndexError):
        missing = [k for k in keys if k not in state]
        raise WeightsError(f"checkpoint lacks the paper's layers (missing {', '.join(missing[:3]) or 'conv weights'})") from None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint file safely (tensors and plain containers only)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsafe content"
        raise WeightsError(f"{path.name}: refused, not a plain weights file ({first[:160]})") from None
    except Exception as e:  # truncated zip, not a torch file, ...
        raise WeightsError(f"{path.name}: unreadable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else 'corrupt'})") from None
    if isinstance(obj, dict) and "state_dict" in obj:
        return obj
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"state_dict": obj}
    raise WeightsError(f"{path.name}: not a checkpoint of this network (no state_dict)")


def build_model(state: Mapping[str, torch.Tensor], widths: tuple[int, ...] | None = None) -> DRNet:
    """A DRNet holding ``state`` exactly (every key and shape), frozen in eval mode."""
    widths = widths or _widths_from_state(state)
    model = DRNet(widths)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:200]
        raise WeightsError(f"checkpoint does not match the network: {detail}") from None
    model.eval().to(memory_format=torch.channels_last)  # ~2.5x faster convs on CPU
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_weights(name_or_path: str | os.PathLike = DEFAULT) -> LoadedModel:
    """Load a registry entry by name, or a checkpoint file by path, verified."""
    name = str(name_or_path)
    if name in REGISTRY:
        entry = REGISTRY[name]
        path = locate(entry)
        if path is None:
            raise WeightsError(
                f"weights '{name}' are not on this machine: run `python -m core weights fetch {name}` "
                f"(or set ${ENV_DIR} to a folder holding {entry.filename})"
            )
        verify(path, entry.sha256)
        ckpt = read_checkpoint(path)
        meta: dict[str, Any] = dict(entry.meta)
        norm, sha = entry.normalisation, entry.sha256
    else:
        path = Path(name).expanduser()
        if not path.is_file():
            raise WeightsError(f"no weights named '{name}' and no such file; known names: {', '.join(sorted(REGISTRY))}")
        ckpt = read_checkpoint(path)
        meta = dict(ckpt.get("meta") or {})
        meta.setdefault("title", f"User checkpoint {path.name}")
        n = ckpt.get("normalisation")
        norm = Normalisation(tuple(n["mean"]), tuple(n["std"])) if isinstance(n, dict) else IMAGENET
        sha = sha256_of(path)
        name = path.name
    widths = ckpt.get("widths")
    model = build_model(ckpt["state_dict"], tuple(widths) if widths else None)
    meta["num_params"] = count_parameters(model)
    meta["widths"] = list(model.widths)
    return LoadedModel(network=model, name=name, sha256=sha, normalisation=norm, meta=meta, path=path)


def save_checkpoint(path: Path, model: DRNet, meta: Mapping[str, Any], normalisation: Normalisation = IMAGENET) -> str:
    """Write our checkpoint format (state_dict + widths + normalisation + meta); return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "widths": list(model.widths),
            "normalisation": normalisation.as_dict(),
            "meta": dict(meta),
        },
        path,
    )
    return sha256_of(path)


def default_name() -> str | None:
    """The preferred available entry: the paper's weights, else the bundled demo."""
    for name in (DEFAULT, "demo"):
        if is_available(name):
            return name
    return None



# -- the bundled demo (trained here on synthetic images; see assets/weights/MODEL_CARD.md)
DEMO = WeightsEntry(
    name="demo",
    filename="demo-synthetic.pt",
    sha256="87ac4861bb3d66122b849ec4d0d07d6aeb0bba35e0eefa194495a782a2a7141f",
    size=1_585_472,
    bundled=ASSETS / "weights" / "demo-synthetic.pt",
    normalisation=IMAGENET,
    meta={
        "title": "Demo weights trained on synthetic fundus images only (never for clinical use)",
        "num_params": 385_877,
        "widths": None,
        "training_data": (
            "Synthetic images only (core.synthetic): 14,000 for training (seed 1000), 500 for "
            "validation (seed 2000); no photograph of a real eye"
        ),
        "metrics": {
            "test_quadratic_weighted_kappa": 0.9761,
            "test_quadratic_weighted_kappa_ci95": [0.9672, 0.9839],
            "test_accuracy": 0.916,
            "referable_dr_sensitivity_test": 0.970,
            "referable_dr_specificity_test": 1.0,
            "validation_quadratic_weighted_kappa": 0.9743,
            "_test_set": "500 synthetic images, python -m core evaluate --weights demo --synthetic 500 --seed 5000",
        },
        "licence": "same licence as this project",
        "intended_use": (
            "Demonstration and testing of this software only (offline viewer, CLI, explanations). "
            "Trained on synthetic images only: it is not a medical device and must never be used "
            "clinically, on real patients, to diagnose or to decide treatment."
        ),
        "clinical_use": False,
        "synthetic": True,
        "_model_card": "assets/weights/MODEL_CARD.md",
    },
)
register(DEMO)
