"""Several clinicians at the same moment on one server: a benchmark command, not a test.

    python -m tests.viewer.users_bench                      # 8 users, the published weights
    python -m tests.viewer.users_bench --users 4 --model idrid

Starts ``streamlit run viewer/app.py`` on a free port (as ``tests.viewer.page_bench`` does),
opens one browser context per user in Debian's Chromium, and has every user upload a
different photograph (``tests/viewer/clinicians.py``) at the same moment. Prints the time
until every page has settled on its scores and reading view, the slowest and fastest user,
and the server's resident memory before, after and at its peak; each page must show the
scores core computes for its own photograph. Exit status 0, or 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tests.viewer.page_bench import BenchError, server_setup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.viewer.users_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8, help="browsers uploading at once, at most 8 (default 8)")
    parser.add_argument("--model", choices=("idrid", "paper"), default="paper", help="the page's weights (default paper)")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 8:
        parser.error("--users must be 1 to 8")
    chromium = shutil.which("chromium")
    try:
        if not chromium:
            raise BenchError("no `chromium` on PATH (Debian: apt-get install chromium)")
        import core
        from tests.viewer.clinicians import all_at_once, eight_photographs
        from tests.viewer.live_server import peak_rss_mb, serve
        from viewer.render import fmt_score

        photos = dict(list(eight_photographs().items())[: args.users])
        with tempfile.TemporaryDirectory(prefix="dr-users-bench-") as scratch:
            env, launcher = server_setup(args.model, Path(scratch))
            with serve(env, Path(scratch) / "server.log", launcher=launcher) as (proc, port):
                model = core.load_weights(core.REGISTRY[args.model].name if args.model != "paper" else "paper")
                expected = {n: [fmt_score(float(s)) for s in core.explain(model, core.read_fundus(d, name=n)).scores]
                            for n, (d, _) in photos.items()}
                del model
                idle, _ = peak_rss_mb(proc.pid)
                results, total = asyncio.run(all_at_once(chromium, f"http://127.0.0.1:{port}/", photos))
                after, peak = peak_rss_mb(proc.pid)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    wrong = [r["name"] for r in results if r["exceptions"] or [row[1] for row in r["rows"]] != expected[r["name"]]]
    if wrong:
        print(f"error: these pages did not show their own photograph's scores: {', '.join(wrong)}", file=sys.stderr)
        return 2
    done = sorted(r["done_s"] for r in results)
    print(f"users bench: model {args.model}, {args.users} users uploading at once, {os.cpu_count()} CPUs")
    print(f"  every page settled on its own scores and reading view: {total:.1f} s "
          f"(fastest user {done[0]:.1f} s, slowest {done[-1]:.1f} s)")
    print(f"  server memory: idle {idle:.0f} MB, after {after:.0f} MB, peak {peak:.0f} MB")
    print()
    print("| users | all settled (s) | fastest (s) | slowest (s) | server idle (MB) | after (MB) | peak (MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.users} | {total:.1f} | {done[0]:.1f} | {done[-1]:.1f} | {idle:.0f} | {after:.0f} | {peak:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
