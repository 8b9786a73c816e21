"""``python -m core quality``: the options of the quality study, then ``core.study``; and
``python -m core sanity``, its sanity checks of the maps (``core.study.sanity``).

Without ``--out`` the report goes to ``./quality`` (``./sanity``) under the current
directory, never into the repository; refreshing the committed study is an explicit
``--out assets/quality``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .. import study
from ..errors import OptionError
from ..model import CONV_LAYERS
from ..study import Settings, methods, read_document, run_study, sample_of, select_tasks, with_timings, write_report
from ..study import sanity as sanity_checks
from ..study.candidates import candidate_methods, candidate_specs
from ..weights import is_available, load_weights

DEFAULT_OUT = Path("quality")  # relative: resolved against the working directory when the command runs
# --quick: the whole path on a few images, in well under a minute (CI runs it)
QUICK = {"n": 6, "idrid_n": 2, "faith_n": 1, "ig_n": 1, "ig_steps": 4, "bootstrap": 200, "fractions": (0.05, 0.2, 0.5)}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``quality`` with the options the study has always had."""
    q = sub.add_parser("quality", help="measure how well the maps point at lesions and how faithful they are, beside peer methods",
                       description=study.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--weights", help="registry name or checkpoint path; default: demo if available, else paper")
    src = q.add_mutually_exclusive_group()
    src.add_argument("--idrid", metavar="DIR", help="real images with IDRiD-format lesion masks instead of synthetic ones")
    src.add_argument("--real", nargs="+", metavar="PATH", help="real photographs without masks: faithfulness only")
    q.add_argument("--augment", action="store_true", help="with --real: add the 7 flips/rotations of each photograph (labelled)")
    d = Settings()
    q.add_argument("--n", type=int, default=None, help=f"synthetic test images (default {d.n}); with --idrid, the first N "
                                                       "photographs (default: all)")
    q.add_argument("--seed", type=int, default=d.seed, help=f"seed of the synthetic test set, bootstrap and random maps (default {d.seed:_})")
    q.add_argument("--faith-n", type=int, default=d.faith_n, help=f"deletion/insertion on the first N images (default {d.faith_n})")
    q.add_argument("--ig-n", type=int, default=d.ig_n, help=f"Integrated Gradients and Captum's LRP on the first N images (default {d.ig_n})")
    q.add_argument("--ig-steps", type=int, default=d.ig_steps, help=f"Integrated Gradients steps (default {d.ig_steps})")
    q.add_argument("--fractions", default=",".join(f"{100 * f:g}" for f in d.fractions),
                   help="deletion/insertion steps, percent of FOV pixels, besides 0 and 100 (default %(default)s)")
    q.add_argument("--blur-sigma", type=float, default=d.blur_sigma, help=f"Gaussian sigma in px of the removal baseline (default {d.blur_sigma:g})")
    q.add_argument("--min-gap", type=float, default=d.min_gap, help="leave out of deletion/insertion a grade whose score drops by less than this when the whole FOV is blurred (default %(default)s)")
    q.add_argument("--k", type=float, default=d.k, help="k of the k-sigma mask (default %(default)s)")
    q.add_argument("--tolerance", type=float, default=d.tolerance, help="pointing-game tolerance in px (default %(default)s)")
    q.add_argument("--bootstrap", type=int, default=d.bootstrap, help="bootstrap resamples (default %(default)s)")
    q.add_argument("--layers", default=",".join(map(str, d.layers)), help="paper's hidden layers to compare (default %(default)s)")
    q.add_argument("--methods", help="comma-separated subset of methods (default: all)")
    q.add_argument("--views", action="store_true",
                   help=f"also measure the {len(candidate_specs())} candidate lesion-scale views (localisation only) and apply "
                        "the rule that chose core.views.LESION_VIEW")
    q.add_argument("--quick", action="store_true",
                   help=f"a quick check instead of a study: {QUICK['n']} images ({QUICK['idrid_n']} with --idrid), "
                        f"deletion/insertion on {QUICK['faith_n']} at {len(QUICK['fractions'])} steps, Integrated Gradients "
                        f"on {QUICK['ig_n']} ({QUICK['ig_steps']} steps), {QUICK['bootstrap']} bootstrap resamples; "
                        "about a minute on 2 cores (CI runs it)")
    q.add_argument("--batch", type=int, default=d.batch, help="images per forward pass (default %(default)s)")
    q.add_argument("--workers", type=int, default=1, help="evaluate images in this many processes (default 1)")
    q.add_argument("--device", default=d.device, help="torch device of the peer methods and of deletion/insertion (default cpu)")
    q.add_argument("--out", default=None, help=f"folder for the table, plots and SUMMARY.md (default: ./{DEFAULT_OUT} in the current "
                                               "directory; the committed study: --out assets/quality)")
    q.add_argument("--json", metavar="PATH", help="also write the JSON document here")
    q.add_argument("--render", metavar="JSON", help="only re-draw the table, plots and summary from a JSON this command wrote")
    q.add_argument("--timings-from", metavar="JSON", help="with --render: take the timings from another run (e.g. one on a 2-core CPU)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_quality)
    add_sanity_parser(sub)


def add_sanity_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``sanity``: Adebayo et al.'s checks, a separate command because its images
    are few (each costs 17 models' maps) and its options few."""
    d = Settings()
    q = sub.add_parser("sanity", help="sanity checks of the maps: cascading layer randomisation and a random logit (Adebayo et al.)",
                       description=sanity_checks.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--weights", help="registry name or checkpoint path; default: demo if available, else paper")
    q.add_argument("--idrid", metavar="DIR", help="the first --n photographs IDRiD_XX.jpg of this folder (default: held-out synthetic images)")
    q.add_argument("--n", type=int, default=4, help="photographs (default %(default)s; the paper's network on 2 CPU cores: about 130 s each, 90 s with --ig-steps 4)")
    q.add_argument("--seed", type=int, default=d.seed, help=f"seed of the re-initialisation, random grade, random maps, bootstrap "
                                                           f"and synthetic images (default {d.seed:_})")
    q.add_argument("--layers", default=",".join(map(str, d.layers)), help="paper's hidden layers to check (default %(default)s)")
    q.add_argument("--methods", help="comma-separated subset of methods (default: all)")
    q.add_argument("--ig-steps", type=int, default=8, help="Integrated Gradients steps (default %(default)s)")
    q.add_argument("--batchnorm", choices=("reset", "keep"), default="reset",
                   help="a randomised layer's batch norm: re-initialised with its conv (default) or kept as trained")
    q.add_argument("--bootstrap", type=int, default=d.bootstrap, help="bootstrap resamples (default %(default)s)")
    q.add_argument("--out", default=None, help="folder for sanity_<tag>.md/.json/.png (default: ./sanity in the current directory)")
    q.add_argument("--quiet", action="store_true", help="no line per photograph")
    q.set_defaults(func=cmd_sanity)


def output_folder(args: argparse.Namespace) -> Path:
    """``--out``, else ``./quality`` under the current directory (not the repository's assets)."""
    return Path(args.out) if args.out else Path.cwd() / DEFAULT_OUT


def _fractions(text: str) -> tuple[float, ...]:
    try:
        fractions = tuple(sorted(float(v) / 100 for v in text.split(",") if v.strip()))
    except ValueError:
        fractions = ()
    if not fractions or fractions[0] <= 0 or fractions[-1] >= 1:
        raise OptionError("--fractions must be percentages strictly between 0 and 100")
    return fractions


def _layers(text: str) -> tuple[int, ...]:
    try:
        layers = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise OptionError(str(e)) from None
    if any(not 1 <= v <= len(CONV_LAYERS) for v in layers):
        raise OptionError(f"--layers must be layer numbers 1..{len(CONV_LAYERS)}")
    return layers


def cmd_quality(args: argparse.Namespace) -> int:
    """Run the study (or only redraw its report) and print the markdown table."""
    out, json_path = output_folder(args), Path(args.json) if args.json else None
    if args.render:
        doc = read_document(args.render)
        if args.timings_from:
            doc = with_timings(doc, read_document(args.timings_from))
        print(write_report(doc, out, json_path)["markdown_text"])
        return 0
    name = args.weights or ("demo" if is_available("demo") else "paper")
    lm = load_weights(name)  # fails early, with one line, on bad weights
    fractions = _fractions(args.fractions)
    if args.quick:
        if args.n is None:  # an explicit --n still counts
            args.n = QUICK["idrid_n"] if args.idrid else QUICK["n"]
        args.faith_n, args.ig_n, args.ig_steps, args.bootstrap = (QUICK[k] for k in ("faith_n", "ig_n", "ig_steps", "bootstrap"))
        fractions = QUICK["fractions"]
    n = Settings.n if args.n is None else args.n
    if min(n, args.faith_n, args.ig_n) < 0 or min(args.ig_steps, args.batch, args.bootstrap, args.workers) < 1:
        raise OptionError("--n, --faith-n and --ig-n must be >= 0; --ig-steps, --batch, --bootstrap and --workers >= 1")
    layers = _layers(args.layers)
    chosen = methods(layers, [m.strip() for m in args.methods.split(",")] if args.methods else None)
    chosen += candidate_methods() if args.views else []
    tasks, kind, check = select_tasks(lm, real=args.real, augment=args.augment, idrid=args.idrid, n=n, seed=args.seed,
                                      limit=args.n)
    settings = Settings(seed=args.seed, faith_n=args.faith_n, ig_n=args.ig_n, ig_steps=args.ig_steps, fractions=fractions,
                        blur_sigma=args.blur_sigma, min_gap=args.min_gap, k=args.k, tolerance=args.tolerance,
                        bootstrap=args.bootstrap, layers=layers, batch=args.batch, device=args.device).fitted(len(tasks), kind)
    doc = run_study(lm, name, tasks, kind, settings, chosen, workers=args.workers, quiet=args.quiet, held_out_note=check)
    written = write_report(doc, out, json_path)
    print(written["markdown_text"])
    print(timing_line(doc), file=sys.stderr)
    for p in written["files"]:
        print(f"wrote {p}", file=sys.stderr)
    return 0


def timing_line(doc: dict) -> str:
    """Where the run's time went: wall time, per image, and the phases summed over images
    (in worker processes they overlap, so they can add up to more than the wall time)."""
    s, n = doc["settings"], max(doc["n_images"], 1)
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in (doc.get("phases_s") or {}).items())
    return (f"quality: {doc['n_images']} images in {s['wall_s']:.1f} s ({s['wall_s'] / n:.2f} s an image) with "
            f"{s['workers']} worker(s) x {s['threads_per_worker']} torch thread(s); summed over images: {phases}")


def cmd_sanity(args: argparse.Namespace) -> int:
    """Run both sanity checks, write the table, JSON and plot, print the table and the timings."""
    started = time.perf_counter()
    if args.n < 1 or args.ig_steps < 1 or args.bootstrap < 1:
        raise OptionError("--n, --ig-steps and --bootstrap must be >= 1")
    name = args.weights or ("demo" if is_available("demo") else "paper")
    lm = load_weights(name)
    chosen = methods(_layers(args.layers), [m.strip() for m in args.methods.split(",")] if args.methods else None)
    if args.idrid:
        samples, kind = sanity_checks.idrid_photographs(args.idrid, args.n), "idrid"
    else:
        tasks, kind, _ = select_tasks(lm, n=args.n, seed=args.seed)
        samples = [sample_of(t) for t in tasks[:args.n]]
    loaded = time.perf_counter() - started
    doc = sanity_checks.run_sanity(lm, samples, chosen, seed=args.seed, ig_steps=args.ig_steps, batchnorm=args.batchnorm,
                                   bootstrap=args.bootstrap, kind=kind, quiet=args.quiet)
    written = sanity_checks.write_sanity(doc, Path(args.out) if args.out else Path.cwd() / "sanity")
    print(written["markdown_text"])
    t = doc["timings_s"]
    print(f"sanity: {len(samples)} photographs x 17 models in {t['wall']:.1f} s ({t['per_photograph']:.1f} s each), "
          f"reading the weights and photographs {loaded:.1f} s, {doc['settings']['torch_threads']} torch threads", file=sys.stderr)
    print("sanity: seconds per photograph: " + ", ".join(f"{k} {v:.2f}" for k, v in t["per_method_per_photograph"].items()),
          file=sys.stderr)
    for p in written["files"]:
        print(f"wrote {p}", file=sys.stderr)
    return 0


__all__ = ["DEFAULT_OUT", "QUICK", "add_parser", "add_sanity_parser", "cmd_quality", "cmd_sanity", "output_folder", "timing_line"]
