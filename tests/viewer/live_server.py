"""The page served by a real ``streamlit run`` on a free port, for the browser tests of issue 6.

``serve`` starts the server with a given environment, waits for ``/_stcore/health`` and
always stops it through its own process handle. ``wait_quiet`` waits until a server has
finished its background work. ``chromium`` finds Debian's browser (never ``playwright install``).
Every wait here ends on a condition, or fails at a deadline: none is a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UPLOAD = '[data-testid="stFileUploader"] input[type=file]'

__all__ = ["CHROMIUM_ARGS", "HAS_TEXT", "REPO", "SETTLED", "UPLOAD", "chromium_path", "download", "free_port", "peak_rss_mb", "serve",
           "wait_healthy", "wait_quiet"]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# JavaScript predicates evaluated in the page.
SETTLED = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') === 'running') return false;
  if (document.querySelector('[data-stale="true"]')) return false;
  return [...document.images].every(i => i.complete && i.naturalWidth > 0);
}"""
HAS_TEXT = """([selector, text]) => [...document.querySelectorAll(selector)].some(e => e.innerText.includes(text))"""


def download(page, button, *, attempts: int = 3, timeout_ms: int = 45_000):
    """Click a download ``button`` (a locator, or its accessible name) and return Playwright's Download.

    Streamlit revokes a deferred download's file id whenever a rerun redraws the button; a
    click that lands on the old id gets nothing back, and a person simply clicks again. So
    does this: wait for the page to settle, click, and try again (``attempts`` in all)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    locator = page.get_by_role("button", name=button) if isinstance(button, str) else button
    for attempt in range(attempts):
        page.wait_for_function(SETTLED, timeout=120_000)
        try:
            with page.expect_download(timeout=timeout_ms) as dl:
                locator.click()
            return dl.value
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


POLL_S = 0.2  # how often a condition is polled; never how long a test waits


def wait_healthy(port: int, server: subprocess.Popen, timeout: float = 90.0) -> None:
    """Until ``/_stcore/health`` answers 200; fails at once if the server exits, or at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:  # not listening yet (refused), or not ready (HTTP error)
            pass
        try:  # between two polls, wait for the other way this can end: the server's exit
            server.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the streamlit server exited with code {server.returncode}")
    pytest.fail("the streamlit server did not become healthy in time")


def _cpu_and_busy(pid: int) -> tuple[int, bool]:
    """(CPU time of all the process's threads in clock ticks, whether any thread is running or in I/O)."""
    ticks, busy = 0, False
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # the thread ended meanwhile
            continue
        busy |= fields[0] in ("R", "D")
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks, busy


def wait_quiet(pid: int, timeout: float = 180.0, polls: int = 5) -> None:
    """Until the server has finished its background work (e.g. the viewer's map warm-up):
    no thread running and no CPU time used across ``polls`` successive polls; fails at the deadline.

    Linux only (/proc); elsewhere it returns at once.
    """
    if not Path(f"/proc/{pid}/task").is_dir():
        return
    deadline = time.monotonic() + timeout
    last, quiet = None, 0
    while time.monotonic() < deadline:
        ticks, busy = _cpu_and_busy(pid)
        quiet = quiet + 1 if (not busy and ticks == last) else 0
        if quiet >= polls:
            return
        last = ticks
        time.sleep(POLL_S)  # a poll interval: the condition above decides, the deadline bounds it
    pytest.fail(f"the server (pid {pid}) was still busy after {timeout:.0f} s")


def chromium_path() -> str:
    """Debian's chromium; skipped where absent, except in CI (env CI set), where it fails."""
    path = shutil.which("chromium")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
    pytest.skip("no `chromium` on PATH (Debian: apt-get install chromium); the browser test needs it")


@contextlib.contextmanager
def serve(env: dict[str, str], log: Path, *, extra: list[str] = (), launcher: list[str] | None = None,
          timeout: float = 120.0) -> Iterator[tuple[subprocess.Popen, int]]:
    """``streamlit run viewer/app.py`` from the repository root (so .streamlit/config.toml applies),
    with exactly ``env``; the listening address is the config's unless ``extra`` says otherwise."""
    port = free_port()
    cmd = [*(launcher or [sys.executable, "-m", "streamlit"]), "run", "viewer/app.py", "--server.port", str(port), *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_healthy(port, proc, timeout)
            yield proc, port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a live process in MB, from /proc/<pid>/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]
