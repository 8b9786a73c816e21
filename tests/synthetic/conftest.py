"""Images shared by the synthetic generator's tests, made once per session."""

from __future__ import annotations

import pytest

from core.synthetic import SyntheticFundus, generate

SEEDS = (1, 2, 3)


@pytest.fixture(scope="session")
def samples() -> dict[int, list[SyntheticFundus]]:
    """A few images of each grade, made once."""
    return {g: [generate(seed, g) for seed in SEEDS] for g in range(5)}
