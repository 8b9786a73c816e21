"""``python -m core weights list | fetch | verify``: the registry on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import CoreError
from ..weights import REGISTRY, fetch, load_weights, locate, sha256_of, verify
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
            where = str(path) if path else "not on this machine" + (" (python -m core weights fetch " + name + ")" if entry.url else "")
            print(f"{name:8s} {entry.meta.get('title', '')}\n         sha256 {entry.sha256}\n         {where}")
        return 0
    if args.action == "fetch":
        if not args.names:
            raise CoreError("which weights? e.g. `python -m core weights fetch paper`")
        for name in args.names:
            path = fetch(name, progress=progress_bar(name))
            print(f"{name}: {path} (sha256 verified)")
        return 0
    targets = args.names or [n for n in REGISTRY if locate(REGISTRY[n]) is not None]
    if not targets:
        raise CoreError("no weights on this machine to verify")
    for target in targets:
        if target in REGISTRY:
            path = locate(REGISTRY[target])
            if path is None:
                raise CoreError(f"weights '{target}' are not on this machine")
            verify(path, REGISTRY[target].sha256)
            print(f"{target}: {path}: sha256 OK")
        else:
            lm = load_weights(target)
            print(f"{target}: loads strictly ({lm.meta['num_params']:,} parameters), sha256 {sha256_of(Path(target))}")
    return 0
