"""Whole synthetic images: the seeding, ``generate`` and ``generate_many``.

Why a module of its own: this is where the independent random streams of one image are
derived from its seed (0: the eye, 1: the camera, 2: the lesions, re-drawn from a fresh
sub-stream until the grade is the requested one, 3: a random grade) and where the
per-image seeds and grades of a whole set are derived from (set seed, index). Those
derivations are what makes image *i* of a set reproducible by anyone (the bundled demo
model was trained on them), so they live in one place.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice

import cv2
import numpy as np

from ..model import INPUT_SIZE, N_GRADES
from .anatomy import render_eye
from .camera import photograph
from .grading import LESION_TYPES, grade_from_lesions
from .lesions import composite, draw_lesions

# The default image size is the model's input size, so that a generated image needs no
# resizing to be graded.
SIZE = INPUT_SIZE
_MAX_ATTEMPTS = 25


@dataclass(frozen=True, eq=False)
class SyntheticFundus:
    """One synthetic photograph, its lesion masks and the grade they imply.

    An instance is one microaneurysm, haemorrhage, hard-exudate deposit, cotton-wool
    spot, beaded vein stretch, IRMA complex, neovascular tuft or pre-retinal
    haemorrhage. ``per_quadrant[t]`` counts the instances of type ``t`` whose centre
    lies in each of ``QUADRANTS`` (around the fovea); the severe-NPDR rules need it.
    ``generate(f.seed, f.grade)`` reproduces ``f`` exactly.
    """

    image: np.ndarray  # (S, S, 3) uint8 RGB
    fov: np.ndarray  # (S, S) bool
    masks: dict[str, np.ndarray]  # every lesion type -> (S, S) bool
    counts: dict[str, int]  # every lesion type -> number of instances drawn
    per_quadrant: dict[str, tuple[int, int, int, int]]
    grade: int
    seed: int
    eye: str  # "left" or "right"
    disc_centre: tuple[float, float]  # (x, y) px
    fovea_centre: tuple[float, float]  # (x, y) px
    disc_diameter: float  # px

    @property
    def lesion_union(self) -> np.ndarray:
        """Pixels that belong to any lesion."""
        out = np.zeros(self.fov.shape, bool)
        for m in self.masks.values():
            out |= m
        return out

    @property
    def haemorrhages_per_quadrant(self) -> tuple[int, int, int, int]:
        return self.per_quadrant["haemorrhage"]

    @property
    def venous_beading_quadrants(self) -> int:
        """Number of quadrants with at least one beaded vein segment."""
        return sum(1 for n in self.per_quadrant["venous_beading"] if n > 0)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def generate(seed: int, grade: int | None = None, size: int = SIZE, *, lesions: bool = True) -> SyntheticFundus:
    """One synthetic fundus photograph of ``grade`` (random if None), reproducible by seed.

    Lesions are sampled for the requested grade, then the grade is recomputed by
    ``grade_from_lesions`` from what was actually painted; if a placement failed and
    the two differ, the lesions are re-drawn from the next sub-stream. With
    ``lesions=False`` the same eye and camera are rendered without any lesion (grade 0).
    """
    seed = int(seed)
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if size < 128:
        raise ValueError("size must be >= 128 (microaneurysms would be sub-pixel)")
    if grade is None:
        grade = int(_rng(seed, 3).integers(N_GRADES))
    if grade not in range(N_GRADES):
        raise ValueError(f"grade must be 0..4 or None, got {grade!r}")
    eye, vessels, img, vessel_opacity = render_eye(_rng(seed, 0), size)
    fov = eye.fov_weight > 0
    counts = {t: 0 for t in LESION_TYPES}
    perq = {t: (0, 0, 0, 0) for t in LESION_TYPES}
    masks = {t: np.zeros((size, size), bool) for t in LESION_TYPES}
    drawn = 0
    if lesions and grade > 0:
        for attempt in range(_MAX_ATTEMPTS):
            rng = _rng(seed, 2, attempt)
            painter = draw_lesions(eye, vessels, vessel_opacity, rng, grade)
            counts, perq = painter.counts()
            drawn = grade_from_lesions(
                counts, perq["haemorrhage"], sum(1 for v in perq["venous_beading"] if v)
            )
            if drawn == grade:
                break
        else:  # pragma: no cover - would need 25 unlucky placements in a row
            raise RuntimeError(f"could not draw grade {grade} for seed {seed}")
        composite(img, painter, rng)
        masks = painter.masks(fov)
    image = photograph(img, eye, _rng(seed, 1))
    return SyntheticFundus(
        image=image, fov=fov, masks=masks, counts=counts, per_quadrant=perq, grade=drawn,
        seed=seed, eye="right" if eye.side > 0 else "left", disc_centre=eye.disc,
        fovea_centre=eye.fovea, disc_diameter=eye.dd,
    )


def image_seed(seed: int, i: int) -> int:
    """The ``generate`` seed of image ``i`` of the set ``seed`` (what ``generate_many`` uses)."""
    return int(np.random.SeedSequence(int(seed), spawn_key=(0, int(i))).generate_state(1, np.uint32)[0])


def grade_of(seed: int, i: int, grades: Sequence[int] | None = None) -> int:
    """The grade of image ``i`` of the set ``seed``: ``grades[i % len(grades)]`` if given,
    else balanced (every block of 5 images holds grades 0..4 once, in a seeded order)."""
    if grades is not None:
        return int(grades[i % len(grades)])
    block = _rng(int(seed), 1, i // N_GRADES).permutation(N_GRADES)  # balanced, order shuffled per block
    return int(block[i % N_GRADES])


def _job(args: tuple[int, int, int]) -> SyntheticFundus:
    return generate(args[0], args[1], args[2])


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


def generate_many(n: int, seed: int, grades: Sequence[int] | None = None, workers: int = 1,
                  size: int = SIZE) -> Iterator[SyntheticFundus]:
    """``n`` images; image i depends only on (seed, i), whatever ``workers`` is.

    Grades: by default every block of 5 consecutive images holds grades 0..4 once, in
    a seeded order (balanced, not periodic); with ``grades`` image i gets
    ``grades[i % len(grades)]`` (pass n grades to set each one). Image i is
    ``generate(s_i, g_i)`` with ``s_i`` derived from (seed, i) and kept in ``.seed``.

    ``workers > 1`` renders in spawned processes (safe beside torch's threads), so a
    script that calls it must guard its entry point with ``if __name__ == "__main__":``.
    At most a few images per worker are rendered ahead of the consumer, which bounds
    memory when a slow training loop reads the stream.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if grades is not None and (len(grades) == 0 or any(int(g) not in range(N_GRADES) for g in grades)):
        raise ValueError("grades must be a non-empty sequence of values in 0..4")
    jobs = [(image_seed(seed, i), grade_of(seed, i, grades), size) for i in range(n)]
    if workers <= 1 or n <= 1:
        for job in jobs:
            yield _job(job)
        return
    ctx = multiprocessing.get_context("spawn")
    ex = ProcessPoolExecutor(min(workers, n), mp_context=ctx, initializer=_init_worker)
    try:
        pending: deque[Future[SyntheticFundus]] = deque()
        todo = iter(jobs)
        for job in islice(todo, 3 * workers):
            pending.append(ex.submit(_job, job))
        while pending:
            try:
                f = pending.popleft().result()
            except BrokenProcessPool as e:
                raise RuntimeError(
                    "a generate_many worker died; if the caller is a script, guard it with "
                    "if __name__ == '__main__':"
                ) from e
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(ex.submit(_job, nxt))
            yield f
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
