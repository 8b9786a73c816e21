"""Refresh the README's screenshots (assets/screenshots/) on purpose; the tests never write there.

    python -m tests.viewer.screenshots                 # the published weights, into assets/screenshots/
    python -m tests.viewer.screenshots --out /tmp/shots --exam-out /tmp/shots --model idrid
    python -m tests.viewer.screenshots --only exam     # assets/screenshots/exam-page.png only

Runs from the repository root: starts ``streamlit run viewer/app.py`` on a free port, walks the
page through in Debian's Chromium as tests/viewer/test_browser.py does (checking every number
against core on the way) and saves the two full-page pictures of the one-photograph page the
README shows, then the screening exam's (``walkthrough.demo_exam``: bundled IDRiD photographs,
one of them a DICOM file of a made-up patient). The published weights are looked for as the
tests do ($DR_WEIGHTS_DIR, ../shared/weights, the user's cache). Exit status 0 when every
picture was written, 2 with one line on stderr when something is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tests.viewer.page_models import ENV, PAPER_FILE, REPO, find_paper_weights, model_env

DEFAULT_OUT = REPO / "assets" / "screenshots"
DEFAULT_EXAM_OUT = DEFAULT_OUT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.viewer.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the pictures (default {DEFAULT_OUT})")
    parser.add_argument("--exam-out", type=Path, default=DEFAULT_EXAM_OUT,
                        help=f"folder for the exam page's picture (default {DEFAULT_EXAM_OUT})")
    parser.add_argument("--only", choices=("viewer", "exam"), help="only the one-photograph page's pictures, or the exam's")
    parser.add_argument("--model", choices=("paper", "idrid"), default="paper",
                        help="the weights the page uses (default: paper, as in the README)")
    args = parser.parse_args(argv)

    chromium = shutil.which("chromium")
    if not chromium:
        print("error: no `chromium` on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        print("error: Playwright's Python package is not installed (pip install -r requirements-dev.txt)", file=sys.stderr)
        return 2
    paper_dir = find_paper_weights() if args.model == "paper" else None
    if args.model == "paper" and paper_dir is None:
        print(f"error: the published weights are not on this machine: set {ENV} to a folder holding {PAPER_FILE}"
              " or run `python -m core weights fetch paper`", file=sys.stderr)
        return 2

    import core
    from tests.viewer.live_server import serve
    from tests.viewer.walkthrough import RETINA, browser_page, demo_exam, exam_scenario, full_scenario

    with tempfile.TemporaryDirectory(prefix="dr-screenshots-") as scratch:
        env = model_env(args.model, Path(scratch), paper_dir)
        os.environ.update(env)  # core's numbers below come from the same weights as the page's
        if core.default_name() != args.model:
            print(f"error: with {env} the page would use {core.default_name()!r}, not {args.model!r}", file=sys.stderr)
            return 2
        saved = []
        with serve(dict(os.environ), Path(scratch) / "server.log") as (_, port), browser_page(chromium) as page:
            url = f"http://127.0.0.1:{port}/"
            if args.only != "exam":
                exp = core.explain(core.load_weights(args.model), core.read_fundus(RETINA, name=RETINA.name))
                saved += full_scenario(page, url, exp, args.out)
            if args.only != "viewer":
                saved.append(exam_scenario(page, url, *demo_exam(), args.exam_out)[0])
    for path in saved:
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
