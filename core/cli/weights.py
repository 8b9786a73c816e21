"""``python -m core weights list | fetch | verify``: the registry on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..card import headline
from ..errors import CoreError
from ..weights import REGISTRY, corrupt_copy, fetch, load_weights, locate, sha256_of, unverified_copies
from .common import progress_bar


def add_parser(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("weights", help="list, fetch or verify weights")
    w.add_argument("action", choices=["list", "fetch", "verify"])
    w.add_argument("names", nargs="*", help="registry names (fetch, verify) or checkpoint paths (verify)")
    w.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, entry in REGISTRY.items():
            path = locate(entry)
            bad = [] if path else unverified_copies(entry)
            if path:
                where = str(path)
            elif bad:
                where = f"{bad[0]} FAILS its sha256 check (python -m core weights fetch {name} replaces it)"
            else:
                where = "not on this machine" + (" (python -m core weights fetch " + name + ")" if entry.url else "")
            print(f"{name:8s} {entry.meta.get('title', '')}\n         sha256 {entry.sha256}\n         {where}\n"
                  f"         measured: {headline(entry.meta)}")
        return 0
    if args.action == "fetch":
        if not args.names:
            raise CoreError("which weights? e.g. `python -m core weights fetch paper`")
        for name in args.names:
            path = fetch(name, progress=progress_bar(name))
            print(f"{name}: {path} (sha256 verified)")
        return 0
    targets = args.names or [n for n, e in REGISTRY.items() if locate(e) is not None or unverified_copies(e)]
    if not targets:
        raise CoreError("no weights on this machine to verify")
    for target in targets:
        if target in REGISTRY:
            entry = REGISTRY[target]
            bad = unverified_copies(entry)
            if bad:
                raise corrupt_copy(entry, bad[0])
            path = locate(entry)
            if path is None:
                raise CoreError(f"weights '{target}' are not on this machine")
            print(f"{target}: {path}: sha256 OK")
        else:
            lm = load_weights(target)
            print(f"{target}: loads strictly ({lm.meta['num_params']:,} parameters), sha256 {sha256_of(Path(target))}")
    return 0
