"""The page served by a real ``streamlit run`` on a free port, for the browser tests of issue 6.

``serve`` starts the server with a given environment, waits for ``/_stcore/health`` and
always stops it through its own process handle. ``chromium`` finds Debian's browser
(never ``playwright install``).
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

__all__ = ["CHROMIUM_ARGS", "HAS_TEXT", "REPO", "SETTLED", "UPLOAD", "chromium_path", "free_port", "peak_rss_mb", "serve", "wait_healthy"]

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, server: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the streamlit server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail("the streamlit server did not become healthy in time")




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
