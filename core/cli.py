"""Command line: ``python -m core explain | grade | weights | bench``.

Every failure a user can cause (a bad image, missing weights, no network) ends
with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from . import pictures
from .explanation import Explanation, explain
from .fundus import IMAGE_SUFFIXES, FundusReadError, read_fundus
from .model import CONV_LAYERS, GRADE_NAMES
from .weights import REGISTRY, LoadedModel, WeightsError, default_name, fetch, load_weights, locate, sha256_of, verify

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Something the user can fix; printed as one line."""


def _fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _load(weights: str | None) -> LoadedModel:
    name = weights or default_name()
    if name is None:
        raise UserError("no weights available: run `python -m core weights fetch paper` (or pass --weights PATH)")
    return load_weights(name)


# -- explain ------------------------------------------------------------------
def write_explanation(exp: Explanation, out: Path, k: float, grade: int | None = None) -> list[Path]:
    """Write scores.json, explanation.npz and the PNG/GIF pictures of one image."""
    out.mkdir(parents=True, exist_ok=True)
    g = exp.grade if grade is None else grade
    name = GRADE_NAMES[g]
    fov = exp.fundus.fov
    written: list[Path] = []

    def put(fname: str, data: bytes) -> None:
        (out / fname).write_bytes(data)
        written.append(out / fname)

    def picture(values: np.ndarray, title: str) -> bytes:
        scale = pictures.make_scale(values, region=fov)
        return pictures.png_bytes(pictures.titled(pictures.with_colourbar(pictures.colourise(values, scale), scale), title))

    put("scores.json", exp.scores_json().encode())
    put("explanation.npz", exp.npz_bytes())
    put("retina.png", pictures.png_bytes(exp.fundus.image))
    for spec in CONV_LAYERS:
        for part in ("input_dependent", "constant"):
            values = exp.in_input_space(spec.index, part)[g]
            title = f"Layer {spec.index} {part.replace('_', '-')} (RF {spec.rf_paper} px), grade {g} {name}: sum {values.sum(dtype=np.float64):+.2f}"
            put(f"layer{spec.index:02d}_{part}.png", picture(values, title))
    put("input_map.png", picture(exp.input_map[g], f"Input map, grade {g} {name}: sum {exp.input_map[g].sum(dtype=np.float64):+.2f}"))
    put("constants.png", picture(exp.constants()[g], f"All constant maps, grade {g} {name}: sum {exp.constants()[g].sum(dtype=np.float64):+.2f}"))
    total = exp.total()[g]
    put("total.png", picture(total, f"Total map, grade {g} {name}: sum {total.sum(dtype=np.float64):+.2f} = score {exp.scores[g]:+.2f}"))
    mask = exp.mask(g, k)
    share = mask.sum() / max(int(fov.sum()), 1)
    overlay = pictures.mask_overlay(exp.fundus.image, mask)
    put(f"mask_k{k:g}.png", pictures.png_bytes(pictures.titled(overlay, f"Pixels above {k:g} sigma, grade {g} {name}: {int(mask.sum())} px ({share:.2%} of the field of view)")))
    put("flicker.gif", pictures.flicker_gif([exp.fundus.image, overlay]))
    return written


def cmd_explain(args: argparse.Namespace) -> int:
    model = _load(args.weights)
    status = 0
    used: set[str] = set()
    for path in args.images:
        try:
            fundus = read_fundus(path, name=Path(path).name)
        except (FundusReadError, OSError) as e:
            _fail(f"{path}: {e}")
            status = EXIT_USER_ERROR
            continue
        exp = explain(model, fundus, precision=args.precision)
        stem = Path(path).stem
        while stem in used:
            stem += "_"
        used.add(stem)
        out = Path(args.out) / stem
        write_explanation(exp, out, args.k)
        cons = exp.conservation()
        for w in fundus.warnings:
            print(f"warning: {path}: {w}", file=sys.stderr)
        print(
            f"{path}: grade {exp.grade} ({exp.grade_name}); scores "
            + " ".join(f"{s:+.1f}" for s in exp.scores)
            + f"; conservation error {cons['max_relative_error']:.1e}; wrote {out}"
        )
    return status


# -- grade --------------------------------------------------------------------
def iter_images(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            yield p


def cmd_grade(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .propagation import forward_scores

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    model = _load(args.weights)
    files = list(iter_images(folder))
    if not files:
        raise UserError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    failed = 0
    with open(args.csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "grade", "grade_name"] + [f"score_{g}" for g in range(5)] + [f"probability_{g}" for g in range(5)] + ["warnings", "error"])
        for p in tqdm(files, desc="grading", unit="img", file=sys.stderr, disable=args.quiet):
            rel = p.relative_to(folder).as_posix()
            try:
                fundus = read_fundus(p, name=p.name)
            except (FundusReadError, OSError) as e:
                failed += 1
                w.writerow([rel, "", ""] + [""] * 10 + ["", str(e)])
                continue
            s = forward_scores(model.network, model.normalisation.to_tensor(fundus.image))[0].astype(np.float64)
            prob = np.exp(s - s.max())
            prob /= prob.sum()
            g = int(np.argmax(s))
            w.writerow([rel, g, GRADE_NAMES[g]] + [f"{v:.4f}" for v in s] + [f"{v:.6f}" for v in prob] + ["; ".join(fundus.warnings), ""])
    print(f"graded {len(files) - failed} of {len(files)} images with '{model.name}' -> {args.csv}" + (f"; {failed} unreadable (see the error column)" if failed else ""))
    return 0


# -- weights ------------------------------------------------------------------
def cmd_weights(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, entry in REGISTRY.items():
            path = locate(entry)
            where = str(path) if path else "not on this machine" + (" (python -m core weights fetch " + name + ")" if entry.url else "")
            print(f"{name:8s} {entry.meta.get('title', '')}\n         sha256 {entry.sha256}\n         {where}")
        return 0
    if args.action == "fetch":
        if not args.names:
            raise UserError("which weights? e.g. `python -m core weights fetch paper`")
        for name in args.names:
            path = fetch(name, progress=_progress_bar(name))
            print(f"{name}: {path} (sha256 verified)")
        return 0
    # verify
    targets = args.names or [n for n in REGISTRY if locate(REGISTRY[n]) is not None]
    if not targets:
        raise UserError("no weights on this machine to verify")
    for target in targets:
        if target in REGISTRY:
            path = locate(REGISTRY[target])
            if path is None:
                raise UserError(f"weights '{target}' are not on this machine")
            verify(path, REGISTRY[target].sha256)
            print(f"{target}: {path}: sha256 OK")
        else:
            lm = load_weights(target)
            print(f"{target}: loads strictly ({lm.meta['num_params']:,} parameters), sha256 {sha256_of(Path(target))}")
    return 0


def _progress_bar(name: str) -> Callable[[int, int | None], None]:
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int | None) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, unit="B", unit_scale=True, desc=name, file=sys.stderr)
        bar["bar"].update(done - bar["bar"].n)
        if total and done >= total:
            bar["bar"].close()

    return update


# -- parser -------------------------------------------------------------------
Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Interpretable DR grading (de la Torre, Valls & Puig).")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("explain", help="grade images and write every layer's score maps")
    e.add_argument("images", nargs="+", help="fundus photographs")
    e.add_argument("--weights", help="registry name (paper, demo) or checkpoint path; default: paper if available, else demo")
    e.add_argument("--out", default="out", help="output folder (one subfolder per image)")
    e.add_argument("--k", type=float, default=2.0, help="threshold in standard deviations for the mask (default 2)")
    e.add_argument("--precision", choices=["float32", "float64"], default="float32",
                   help="float64: slow reference arithmetic (README, Precision)")
    e.set_defaults(func=cmd_explain)

    g = sub.add_parser("grade", help="grade a folder of images (forward only) into a CSV")
    g.add_argument("folder")
    g.add_argument("--csv", required=True, help="output CSV")
    g.add_argument("--weights")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_grade)

    w = sub.add_parser("weights", help="list, fetch or verify weights")
    w.add_argument("action", choices=["list", "fetch", "verify"])
    w.add_argument("names", nargs="*", help="registry names (fetch, verify) or checkpoint paths (verify)")
    w.set_defaults(func=cmd_weights)

    from .bench import add_parser as add_bench

    add_bench(sub)
    for extra in _extra_commands():
        extra(sub)
    return p


def _extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Sub-commands that live in their own modules (training, evaluation, ...)."""
    found = []
    for module in ("train", "evaluate", "quality"):
        name = f"{__package__}.{module}"
        if importlib.util.find_spec(name) is not None:
            found.append(importlib.import_module(name).add_parser)
    return found


@contextlib.contextmanager
def _quiet_decoders() -> Iterator[None]:
    """Damaged files make the decoders talk on stderr by themselves (Pillow's warnings,
    OpenCV's libtiff errors); the reader already turns every failure into one line."""
    import cv2

    level = cv2.utils.logging.getLogLevel()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL\.")
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            yield
        finally:
            cv2.utils.logging.setLogLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if os.environ.get("DR_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["DR_THREADS"]))
    try:
        with _quiet_decoders():
            return int(args.func(args) or 0)
    except (UserError, WeightsError, FundusReadError) as e:
        _fail(str(e))
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
