"""Clinicians' marks: one pixel geometry for every shape, and sums inside them that are
exact shares of the score (the total map adds up to it)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from core.marks import LESION_TYPES, Mark, MarkStats, measure, measure_marks, union_mask, unmarked_regions
from core.regions import BLOCK, block_sums, strongest_regions

SIZE = 640


class FakeExplanation:
    """What marks read from an Explanation: scores that are the total maps' sums."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[:SIZE, :SIZE]
        fov = (xx - 319.5) ** 2 + (yy - 319.5) ** 2 <= 300**2
        self.input_map = (rng.normal(size=(5, SIZE, SIZE)) * fov).astype(np.float32)
        self.input_map[3, 200:232, 400:432] += 0.5  # one place that speaks for grade 3
        self._constants = (rng.normal(0.01, 0.05, size=(5, SIZE, SIZE)) * fov).astype(np.float32)
        self._total = (self.input_map.astype(np.float64) + self._constants).astype(np.float32)
        self._total.setflags(write=False)
        self.scores = self._total.sum(axis=(1, 2), dtype=np.float64).astype(np.float32)
        self.fundus = SimpleNamespace(fov=fov, crop_box=(100, 50, 1380, 1330), original_size=(1500, 1400))
        self.grade = int(np.argmax(self.scores))

    def total(self, grade: int | None = None) -> np.ndarray:
        return self._total if grade is None else self._total[grade]


@pytest.fixture(scope="module")
def exp() -> FakeExplanation:
    return FakeExplanation()


@pytest.fixture(scope="module")
def marks() -> list[Mark]:
    return [
        Mark("box", "haemorrhage", ((390, 190), (420, 240))),
        Mark("lasso", "hard exudate", ((100, 300), (180, 280), (200, 360), (120, 390))),
        Mark("point", "microaneurysm", ((410.3, 215.8),)),  # inside the box: overlaps
        Mark("box", "other", ((-20, 600), (30, 700))),  # past the corner: clipped
    ]


def even_odd_reference(pts, size: int = SIZE) -> np.ndarray:
    """Slow textbook ray casting at every pixel centre (the crossing to the right of the centre)."""
    cx, cy = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    inside = np.zeros((size, size), bool)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        if y0 == y1:
            continue
        crosses = (y0 > cy) != (y1 > cy)
        x_at = x0 + (cy - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (cx < x_at)
    return inside


# -- geometry -------------------------------------------------------------------------


def test_a_box_covers_its_area_in_any_corner_order_and_is_clipped():
    corners = [((10, 20), (50, 35)), ((50, 35), (10, 20)), ((10, 35), (50, 20)), ((50, 20), (10, 35))]
    masks = [Mark("box", "haemorrhage", c).mask() for c in corners]
    assert masks[0].sum() == 40 * 15
    assert all((m == masks[0]).all() for m in masks)
    assert masks[0][20:35, 10:50].all()
    assert Mark("box", "other", corners[0]).bounds() == (10, 20, 50, 35)
    clipped = Mark("box", "other", ((-15.0, 600.0), (25.0, 700.0)))
    assert clipped.mask().sum() == 25 * 40 and clipped.bounds() == (0, 600, 25, 640)
    assert not Mark("box", "other", ((700, 700), (800, 800))).mask().any()
    assert Mark("box", "other", ((700, 700), (800, 800))).bounds() == (0, 0, 0, 0)


def test_fractional_box_edges_go_by_pixel_centres():
    m = Mark("box", "other", ((10.4, 10.6), (12.6, 12.5))).mask()
    # centres 10.5, 11.5, 12.5 in x (12.5 < 12.6); in y 11.5 only (10.5 < 10.6, 12.5 is not < 12.5)
    assert np.argwhere(m).tolist() == [[11, 10], [11, 11], [11, 12]]


def test_a_lasso_square_is_the_box_of_the_same_square():
    for x0, y0, x1, y1 in [(10, 20, 50, 35), (100.3, 200.7, 140.2, 260.9), (-30, 610, 40, 700)]:
        box = Mark("box", "other", ((x0, y0), (x1, y1))).mask()
        for pts in [((x0, y0), (x1, y0), (x1, y1), (x0, y1)), ((x0, y1), (x1, y1), (x1, y0), (x0, y0))]:
            lasso = Mark("lasso", "other", pts).mask()
            assert (lasso == box).all()


def test_a_triangle_covers_about_its_area():
    pts = ((100.0, 100.0), (300.0, 120.0), (150.0, 400.0))
    m = Mark("lasso", "cotton-wool spot", pts).mask()
    area = 0.5 * abs((300 - 100) * (400 - 100) - (150 - 100) * (120 - 100))
    perimeter = sum(np.hypot(a[0] - b[0], a[1] - b[1]) for a, b in zip(pts, pts[1:] + pts[:1], strict=True))
    assert abs(int(m.sum()) - area) <= perimeter / 2  # only pixels the edges cut can go either way
    assert m[200, 180] and not m[100, 300]
    assert Mark("lasso", "other", pts).bounds()[0] == 100


def test_a_self_crossing_lasso_follows_the_even_odd_rule():
    rng = np.random.default_rng(3)
    for _ in range(5):
        pts = [tuple(p) for p in rng.uniform(-50, 690, size=(9, 2))]
        assert (Mark("lasso", "other", tuple(pts)).mask() == even_odd_reference(pts)).all()
    star = [(320 + 200 * np.cos(a), 320 + 200 * np.sin(a)) for a in np.arange(5) * 4 * np.pi / 5]
    m = Mark("lasso", "other", tuple(star)).mask()
    assert not m[319, 319]  # a pentagram's middle is crossed twice: outside
    assert (m == even_odd_reference(star)).all()


def test_a_point_is_a_disc_and_at_least_its_own_pixel():
    m = Mark("point", "microaneurysm", ((100.5, 200.5),)).mask()
    yy, xx = np.mgrid[:SIZE, :SIZE]
    assert (m == ((xx + 0.5 - 100.5) ** 2 + (yy + 0.5 - 200.5) ** 2 <= 9)).all()
    assert m.sum() == 29 and Mark("point", "microaneurysm", ((100.5, 200.5),)).bounds() == (97, 197, 104, 204)
    tiny = Mark("point", "microaneurysm", ((7.9, 3.1),), radius=0.2).mask()
    assert np.argwhere(tiny).tolist() == [[3, 7]]
    assert Mark("point", "microaneurysm", ((0.2, 639.9),), radius=2).mask().sum() == 4  # clipped at a corner: centres (0.5|1.5, 639.5|638.5)
    assert Mark("point", "microaneurysm", ((1, 1),)).radius == 3.0


def test_marks_round_trip_through_json():
    for mark in [
        Mark("box", "haemorrhage", ((1, 2), (3.5, 4))),
        Mark("lasso", "neovascularisation", [[0, 0], [10, 0], [5, 8.25]]),
        Mark("point", "microaneurysm", ((3, 4),), radius=1.5),
    ]:
        d = json.loads(json.dumps(mark.as_dict()))
        assert Mark.from_dict(d) == mark
        assert isinstance(d["points"], list) and all(isinstance(v, float) for p in d["points"] for v in p)
    assert Mark.from_dict({"kind": "point", "lesion": "other", "points": [[1, 2]]}).radius == 3.0
    assert Mark("box", "haemorrhage", ((1, 2), (3, 4))).label(1) == "#1 haemorrhage (box)"


@pytest.mark.parametrize(
    ("kind", "lesion", "points", "match"),
    [
        ("box", "drusen", ((0, 0), (1, 1)), "lesion type"),
        ("circle", "other", ((0, 0), (1, 1)), "kind"),
        ("lasso", "other", ((0, 0), (1, 1)), "at least 3"),
        ("box", "other", ((0, 0),), "exactly 2"),
        ("point", "other", ((0, 0), (1, 1)), "exactly 1"),
        ("point", "other", ((0, float("nan")),), "finite"),
        ("point", "other", ((0, float("inf")),), "finite"),
        ("point", "other", ((0, 1, 2),), "pairs"),
        ("point", "other", (("a", 1),), "pairs"),
        ("box", "other", ((5, 0), (5, 10)), "differ"),
        ("lasso", "other", ((0, 0), (1, 1), (2, 2)), "area"),
    ],
)
def test_invalid_marks_are_refused(kind, lesion, points, match):
    with pytest.raises(ValueError, match=match):
        Mark(kind, lesion, points)


def test_bad_radius_and_bad_dicts_are_refused():
    for r in (-1.0, float("nan"), "big"):
        with pytest.raises(ValueError, match="radius"):
            Mark("point", "other", ((1, 1),), radius=r)
    with pytest.raises(ValueError, match="not a mark"):
        Mark.from_dict({"kind": "box", "points": [[0, 0], [1, 1]]})
    assert len(LESION_TYPES) == 7 and LESION_TYPES[-1] == "other"


def test_the_union_counts_each_pixel_once(marks):
    union = union_mask(marks)
    assert (union == np.logical_or.reduce([m.mask() for m in marks])).all()
    assert union.sum() < sum(int(m.mask().sum()) for m in marks)  # the point lies in the box
    assert not union_mask([]).any()


# -- what the score owes to the marks -------------------------------------------------


def test_each_mark_has_its_exact_share_of_the_score(exp, marks):
    g = 3
    marked = exp.total()[g] > 1.5
    per_mark, union = measure_marks(exp, g, marks, marked)
    assert len(per_mark) == len(marks)
    for mark, s in zip(marks, per_mark, strict=True):
        m = mark.mask()
        assert s.contribution == pytest.approx(float(exp.total()[g][m].sum()), rel=1e-5, abs=1e-4)
        assert s.image_evidence == pytest.approx(float(exp.input_map[g][m].sum(dtype=np.float64)))
        assert s.image_evidence + s.constants == pytest.approx(s.contribution, abs=1e-9)
        assert s.pixels == m.sum() and s.marked_pixels == (m & marked).sum()
        assert s.marked_share == pytest.approx((m & marked).sum() / marked.sum())
        assert s.score_share == pytest.approx(s.contribution / float(exp.scores[g]))
    u = union_mask(marks)
    outside = float(exp.total()[g][~u].sum(dtype=np.float64))
    assert union.contribution + outside == pytest.approx(float(exp.scores[g]), rel=1e-4)
    assert union.pixels == u.sum()
    assert per_mark[0].contribution > 0  # the box holds the place that speaks for grade 3


def test_marked_share_is_one_over_the_whole_image_and_zero_without_marks(exp):
    g = exp.grade
    everything = np.ones((SIZE, SIZE), bool)
    marked = exp.total()[g] > 2.0
    s = measure(exp, g, everything, marked)
    assert s.marked_share == 1.0 and s.marked_pixels == marked.sum()
    assert s.contribution == pytest.approx(float(exp.scores[g]), rel=1e-4)
    assert s.score_share == pytest.approx(1.0, rel=1e-4)
    none = measure(exp, g, everything, np.zeros((SIZE, SIZE), bool))
    assert none.marked_share == 0.0 and none.marked_pixels == 0
    assert set(s.as_dict()) == set(MarkStats.__dataclass_fields__)
    json.dumps(s.as_dict())


def test_a_zero_score_has_no_share(exp):
    zero = SimpleNamespace(total=exp.total, input_map=exp.input_map, scores=np.zeros(5, np.float32))
    s = measure(zero, 0, np.ones((SIZE, SIZE), bool), np.zeros((SIZE, SIZE), bool))
    assert s.score_share == 0.0


def test_measure_refuses_masks_that_are_not_bool_maps(exp):
    with pytest.raises(ValueError, match="bool"):
        measure(exp, 0, np.ones((SIZE, SIZE), np.uint8), np.zeros((SIZE, SIZE), bool))
    with pytest.raises(ValueError, match="shape"):
        measure(exp, 0, np.ones((10, 10), bool), np.zeros((SIZE, SIZE), bool))


def test_unmarked_regions_skip_what_is_marked(exp, marks):
    g = 3
    exclude = union_mask(marks)
    got = unmarked_regions(exp, g, exclude, n=400)
    keep = np.where(exclude, 0.0, exp.total()[g].astype(np.float64))
    sums = block_sums(keep)
    assert len(got) == int((sums > 0).sum())
    for r in got:
        x0, y0, x1, y1 = r.box
        assert not exclude[y0:y1, x0:x1].all()
        assert r.contribution == pytest.approx(sums[y0 // BLOCK, x0 // BLOCK]) and r.contribution > 0
        inside = ~exclude[y0:y1, x0:x1]
        assert r.image_evidence == pytest.approx(float(exp.input_map[g][y0:y1, x0:x1][inside].sum(dtype=np.float64)))
        assert r.fov_share == pytest.approx(float(exp.fundus.fov[y0:y1, x0:x1].mean()))
    assert [r.contribution for r in got] == sorted((r.contribution for r in got), reverse=True)
    # the strong place (x 400..432) is cut by the box (x 390..420): block x 416..448 keeps x 420..448 of it
    half = next(r for r in got if r.box == (416, 192, 448, 224))
    assert half.contribution > 50  # 0.5 x 12 x 24 = 144 from the place, noise about 30
    # a block that is wholly excluded never comes back
    whole = np.zeros((SIZE, SIZE), bool)
    whole[192:224, 384:416] = True
    assert all(r.box != (384, 192, 416, 224) for r in unmarked_regions(exp, g, whole, n=400))


def test_with_nothing_excluded_unmarked_regions_are_the_strongest(exp):
    nothing = np.zeros((SIZE, SIZE), bool)
    for g in range(5):
        for size in (16, BLOCK):
            assert unmarked_regions(exp, g, nothing, n=7, size=size) == strongest_regions(exp, g, n=7, size=size)


def test_a_real_photographs_marks_conserve_its_score(paper_explanation):
    exp = paper_explanation
    g = exp.grade
    top = strongest_regions(exp, g, n=1)[0]
    x0, y0, x1, y1 = top.box
    marks = [Mark("box", "haemorrhage", ((x0, y0), (x1, y1))), Mark("point", "microaneurysm", ((320.0, 320.0),))]
    per_mark, union = measure_marks(exp, g, marks, exp.mask(g))
    assert per_mark[0].contribution == pytest.approx(top.contribution, rel=1e-6, abs=1e-6)
    outside = float(exp.total()[g][~union_mask(marks)].sum(dtype=np.float64))
    assert union.contribution + outside == pytest.approx(float(exp.scores[g]), rel=1e-4, abs=1e-3)
    rest = unmarked_regions(exp, g, union_mask(marks))
    assert all(r.box != top.box for r in rest)
    assert unmarked_regions(exp, g, np.zeros((640, 640), bool)) == strongest_regions(exp, g)
