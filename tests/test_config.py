"""The server's privacy and limits live in .streamlit/config.toml: keep them there."""

import tomllib

import core
from tests.conftest import ROOT


def test_streamlit_config_keeps_statistics_off_and_matches_the_readers_limit():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["server"]["maxUploadSize"] * 2**20 == core.MAX_BYTES
