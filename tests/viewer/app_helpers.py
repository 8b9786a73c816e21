"""What the AppTest modules share: reading the page's text, and catching its deferred downloads."""

from __future__ import annotations

from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest


def texts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def find(at: AppTest, prefix: str) -> str:
    """The first markdown on the page that starts with ``prefix`` (fails if there is none)."""
    hits = [t for t in texts(at) if t.startswith(prefix)]
    assert hits, f"no markdown starting with {prefix!r}"
    return hits[0]


def catch_downloads(monkeypatch) -> dict[str, object]:
    """The download buttons' makers (Streamlit's deferred callables), by file name: each is what
    the browser's click would run."""
    made: dict[str, object] = {}
    real = MediaFileManager.add_deferred

    def record(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        made[file_name] = data_callable
        return real(self, data_callable, mimetype, coordinates, file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return made
