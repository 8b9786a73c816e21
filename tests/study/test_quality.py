"""The quality study: each metric on hand-made maps with a known answer, the faithfulness
curves on a toy linear model, the bootstrap, mask geometry, and the command end to end."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import core
from core import quality as q
from core import synthetic
from core.attribution import Context, Peers, methods, random_map
from core.cli import main as cli_main
from core.weights import save_checkpoint
from tests.conftest import RETINA

N = 64


def disc(n: int = N) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return (xx - (n - 1) / 2) ** 2 + (yy - (n - 1) / 2) ** 2 <= (n / 2) ** 2


def square(x0: int, y0: int, side: int, n: int = N) -> np.ndarray:
    m = np.zeros((n, n), bool)
    m[y0:y0 + side, x0:x0 + side] = True
    return m


# -- pixel AUC --------------------------------------------------------------------------
def test_auc_perfect_constant_inverted():
    fov, lesion = disc(), square(20, 20, 8)
    perfect = lesion.astype(np.float32)
    assert q.pixel_auc(perfect, lesion, fov) == 1.0
    assert q.pixel_auc(np.full((N, N), 3.0), lesion, fov) == 0.5
    assert q.pixel_auc(-perfect, lesion, fov) == 0.0
    assert np.isnan(q.pixel_auc(perfect, np.zeros((N, N), bool), fov))  # no positives: undefined


def test_auc_ignores_pixels_outside_the_fov():
    fov, lesion = disc(), square(28, 28, 6)
    values = lesion.astype(np.float32)
    values[0, 0] = 100.0  # a corner, outside the disc
    assert q.pixel_auc(values, lesion, fov) == 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=4, max_size=40), st.data())
def test_auc_equals_the_pairwise_definition(values, data):
    v = np.array(values, np.float32).reshape(1, -1)
    pos = np.array(data.draw(st.lists(st.booleans(), min_size=v.size, max_size=v.size)), bool).reshape(1, -1)
    region = np.ones_like(pos)
    got = q.pixel_auc(v, pos, region)
    if pos.all() or not pos.any():
        assert np.isnan(got)
        return
    a, b = v[pos][:, None], v[~pos][None, :]
    assert got == pytest.approx(((a > b) + 0.5 * (a == b)).mean())


# -- pointing game ------------------------------------------------------------------------
@pytest.mark.parametrize(("peak", "hit"), [((22, 22), 1.0), ((27, 22), 1.0), ((30, 22), 0.0), ((50, 40), 0.0)])
def test_pointing_game_on_next_to_far(peak, hit):
    """Lesion: x, y in 20..24; tolerance 3 px: x = 27 is 3 px away (hit), x = 30 is 6 px (miss)."""
    fov, lesion = disc(), square(20, 20, 5)
    values = np.zeros((N, N), np.float32)
    values[peak[1], peak[0]] = 1.0
    assert q.pointing_hit(values, q.near(lesion, 3.0) & fov, fov) == hit


def test_pointing_game_ties_score_their_share_and_the_fov_limits_the_maximum():
    fov, lesion = disc(), square(20, 20, 5)
    target = q.near(lesion, 0.0) & fov
    flat = np.ones((N, N), np.float32)
    assert q.pointing_hit(flat, target, fov) == pytest.approx(lesion.sum() / fov.sum())
    values = lesion.astype(np.float32)
    values[0, 0] = 9.0  # outside the FOV: ignored
    assert q.pointing_hit(values, target, fov) == 1.0


# -- k-sigma mask ----------------------------------------------------------------------------
def test_precision_recall_of_the_k_sigma_mask():
    fov = np.ones((N, N), bool)
    lesion = square(10, 10, 4)  # 16 px
    values = np.zeros((N, N), np.float32)
    values[10:14, 10:12] = 10.0  # 8 px on the lesion
    values[40:42, 40:44] = 10.0  # 8 px off it
    mask = core.threshold_mask(values, fov, 2.0)
    assert mask.sum() == 16
    precision, recall = q.mask_precision_recall(mask, lesion)
    assert (precision, recall) == (0.5, 0.5)
    p, r = q.mask_precision_recall(np.zeros_like(mask), lesion)
    assert np.isnan(p) and r == 0.0


def test_instances_hit_counts_touched_components():
    lesions = square(5, 5, 3) | square(30, 30, 3) | square(50, 10, 2)
    lesions[8, 8] = True  # diagonal neighbour of (7, 7): the same instance (8-connected)
    labels, count = q.components(lesions)
    assert count == 3
    mask = np.zeros((N, N), bool)
    mask[8, 8] = True  # touches the first instance by one pixel
    mask[31, 31] = True
    assert q.instances_hit(mask, labels, count) == 2
    assert q.instances_hit(np.zeros_like(mask), labels, count) == 0


def test_mask_metrics_leave_out_images_without_lesions():
    fov = disc()
    truth = q.Truth(fov, np.zeros((N, N), bool), np.zeros((N, N), bool), {})
    assert q.mask_metrics(np.random.default_rng(0).random((N, N)), truth, 2.0) == {}


# -- deletion / insertion -------------------------------------------------------------------
def test_deletion_and_insertion_on_a_linear_model():
    """Score = sum of channel 0 over a region R of 10% of the FOV; x = 1, baseline = 0.

    With the perfect map (R first) deletion is 1 - min(f / 0.1, 1); insertion its mirror.
    """
    n = 40
    fov = np.ones((n, n), bool)
    region = np.zeros((n, n), bool)
    region.flat[: n * n // 10] = True
    r = torch.from_numpy(region)

    def score(batch: torch.Tensor) -> torch.Tensor:
        return (batch[:, 0] * r).sum((1, 2))[:, None].repeat(1, 5)

    x, base = torch.ones(3, n, n), torch.zeros(3, n, n)
    fractions = np.array([0.02, 0.05, 0.1, 0.2, 0.5])
    counts = [round(f * n * n) for f in fractions]
    rng = np.random.default_rng(0)
    maps = {"perfect": region.astype(np.float32), "inverted": -region.astype(np.float32)}
    ranks = [q.descending_ranks(m, fov, rng) for m in maps.values()]
    sc = q.perturbation_scores(score, x, base, ranks, counts, batch=3)[..., 0]
    s0, sb = float(region.sum()), 0.0
    y = (sc - sb) / (s0 - sb)
    np.testing.assert_allclose(y[0, 0], 1 - np.minimum(fractions / 0.1, 1))  # perfect map, deletion
    np.testing.assert_allclose(y[0, 1], np.minimum(fractions / 0.1, 1))  # perfect map, insertion
    np.testing.assert_allclose(y[1, 0], 1.0)  # inverted map removes R last: nothing lost up to 50%
    deletion = [q.curve_area(np.r_[1.0, y[i, 0], 0.0]) for i in range(2)]
    insertion = [q.curve_area(np.r_[0.0, y[i, 1], 1.0]) for i in range(2)]
    assert deletion[0] < deletion[1] and insertion[0] > insertion[1]
    assert q.curve_area(np.array([1.0, 1.0, 0.0])) == 0.75


def test_descending_ranks_order_ties_and_outside():
    values = np.array([[3.0, 1.0, 1.0], [2.0, 9.0, 1.0]])
    region = np.array([[True, True, True], [True, False, True]])
    ranks = q.descending_ranks(values, region, np.random.default_rng(1))
    assert ranks[0, 0] == 0 and ranks[1, 0] == 1
    assert sorted(ranks[values == 1.0]) == [2, 3, 4]
    assert ranks[1, 1] > 1000  # outside: never reached


def test_blurred_baseline_stays_black_outside_and_removes_detail():
    f = synthetic.generate(10_000_000, 2)
    b = q.blurred(f.image, f.fov, 20.0)
    assert (b[~f.fov] == 0).all()
    assert b[f.fov].std() < f.image[f.fov].std()


# -- bootstrap -------------------------------------------------------------------------------
def test_bootstrap_interval_contains_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (40, 1000):
        x = rng.normal(0.7, 0.1, n)
        value, low, high, _ = q.ratio_ci(x, np.ones(n), q.resample_weights(n, 500, 0))
        assert low <= value <= high and value == pytest.approx(x.mean())
        widths.append(high - low)
    assert widths[1] < widths[0] / 3


def test_bootstrap_pools_ratios_and_skips_undefined_images():
    num, den = np.array([1.0, 3.0, 0.0]), np.array([2.0, 4.0, 0.0])  # the third image has no instance
    value, low, high, _ = q.ratio_ci(num, den, q.resample_weights(3, 200, 1))
    assert value == pytest.approx(4 / 6) and 0.5 <= low <= value <= high <= 0.75


# -- masks of real photographs ------------------------------------------------------------------
def test_map_mask_follows_the_image_through_trim_and_resize():
    """Squares painted pure green on a photograph (an eye enlarged off-centre into a larger
    frame): the mapped mask must land where the green pixels land in the prepared image."""
    f = synthetic.generate(10_000_001, 0)
    scale, pad = 1.5, (70, 30)
    big = cv2.resize(f.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    photo = np.zeros((big.shape[0] + 2 * pad[1], big.shape[1] + 2 * pad[0], 3), np.uint8)
    photo[pad[1]:pad[1] + big.shape[0], pad[0]:pad[0] + big.shape[1]] = big
    mask = np.zeros(photo.shape[:2], bool)
    for x, y, side in ((400, 300, 40), (600, 700, 25), (800, 500, 60), (300, 650, 12)):
        mask[y:y + side, x:x + side] = True
    photo[mask] = (0, 255, 0)
    fundus = core.fundus.prepare(photo)
    assert fundus.crop_box != (0, 0, photo.shape[1], photo.shape[0])
    img = fundus.image.astype(int)
    green = (img[..., 1] > 200) & (img[..., 0] < 60) & (img[..., 2] < 60)
    mapped = q.map_mask(mask, fundus.crop_box)
    iou = (mapped & green).sum() / (mapped | green).sum()
    assert iou > 0.8, iou
    shifted = np.roll(mapped, 3, axis=1)
    assert (shifted & green).sum() / (shifted | green).sum() < iou


def test_map_mask_keeps_lesions_smaller_than_an_output_pixel():
    mask = np.zeros((3200, 3200), bool)
    mask[1000, 2000] = True  # one original pixel; 5x5 original pixels make one output pixel
    out = q.map_mask(mask, (0, 0, 3200, 3200))
    assert out.sum() == 1 and out[200, 400]


def test_idrid_folder_is_read_with_grades_and_without_the_optic_disc(tmp_path):
    f = synthetic.generate(10_000_002, 2)
    photo = np.zeros((700, 820, 3), np.uint8)
    photo[30:670, 90:730] = f.image
    imgs, masks = tmp_path / "1. Original Images", tmp_path / "2. Groundtruths"
    (masks / "2. Haemorrhages").mkdir(parents=True)
    (masks / "5. Optic Disc").mkdir(parents=True)
    imgs.mkdir()
    Image.fromarray(photo).save(imgs / "IDRiD_07.jpg", quality=95)
    he = np.zeros(photo.shape[:2], np.uint8)
    he[30:670, 90:730] = f.masks["haemorrhage"] * 255
    Image.fromarray(he).save(masks / "2. Haemorrhages" / "IDRiD_07_HE.tif")
    Image.fromarray(np.full(photo.shape[:2], 255, np.uint8)).save(masks / "5. Optic Disc" / "IDRiD_07_OD.tif")
    Image.fromarray(photo).save(imgs / "IDRiD_08.jpg")  # no masks: skipped
    (tmp_path / "grades.csv").write_text("Image name,Retinopathy grade,Risk of macular edema ,,\nIDRiD_07,2,1,,\n")
    samples = q.idrid_samples(tmp_path)
    assert [s.name for s in samples] == ["IDRiD_07.jpg"] and samples[0].grade == 2
    lesions = samples[0].lesions
    assert set(lesions) == set(q.IDRID_TYPES.values()) and not lesions["microaneurysm"].any()
    got, box = lesions["haemorrhage"], samples[0].fundus.crop_box
    expected = f.masks["haemorrhage"].sum() * (640 / (box[2] - box[0])) ** 2
    assert 0.7 * expected < got.sum() < 1.5 * expected and not (got & ~samples[0].fundus.fov).any()


def test_real_samples_label_their_flips_and_rotations():
    samples = q.real_samples([RETINA], augment=True)
    assert len(samples) == 8 and len({s.name for s in samples}) == 8
    assert all(s.name.startswith("retina.jpg (") and s.lesions is None for s in samples)
    np.testing.assert_array_equal(samples[1].fundus.image, samples[0].fundus.image[:, ::-1])


def test_synthetic_tasks_are_the_images_of_generate_many():
    tasks = q.synthetic_tasks(3, 10_000_000)
    made = list(synthetic.generate_many(3, 10_000_000))
    assert [(t[1], t[2]) for t in tasks] == [(f.seed, f.grade) for f in made]
    sample = next(q.synthetic_samples(3, 10_000_000))  # prepared as a file is; masks follow
    union = np.any(list(sample.lesions.values()), axis=0)
    assert sample.grade == made[0].grade and not (union & ~sample.fundus.fov).any()
    assert union.sum() == pytest.approx(made[0].lesion_union.sum(), rel=0.25)


def test_test_images_that_training_used_are_dropped():
    tasks = q.synthetic_tasks(4, 7) + q.synthetic_tasks(3, 10_000_000)
    meta = {"data": {"train": {"dataset": "synthetic", "n": 2, "seed": 7}, "validation": {"dataset": "synthetic", "n": 1, "seed": 8}}}
    kept, note = q.held_out(tasks, meta)
    assert kept == tasks[2:] and "2 test images" in note
    assert q.held_out(tasks, {})[0] == tasks


# -- the methods and the command ------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = core.DRNet([4] * 15).eval()
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    save_checkpoint(path, model, {"title": "tiny random test network"})
    return path


def test_methods_give_one_map_per_grade_and_charge_shared_passes(tiny):
    lm = core.load_weights(tiny)
    sample = next(q.synthetic_samples(1, 10_000_000))
    peers = Peers(lm, ig_steps=2)
    with torch.inference_mode():  # the forward-only copy folds batch norm: same scores
        want = lm.network(lm.normalisation.to_tensor(sample.fundus.image).contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(peers.scores(lm.normalisation.to_tensor(sample.fundus.image)), want, rtol=1e-4, atol=1e-4)
    ctx = Context(peers, sample.fundus, (1, 3), seed=5, index=0)
    got = {m.name: ctx.run(m) for m in methods()}
    for maps, seconds in got.values():
        assert set(maps) == {1, 3} and all(v.shape == (640, 640) and v.dtype == np.float32 for v in maps.values())
        assert seconds >= 0
    fov = sample.fundus.fov
    a, b = got["paper_input"][0][3][fov], got["gradient_x_input"][0][3][fov]
    assert np.corrcoef(a, b)[0, 1] > 0.99  # PAPER.md section 4: the input map is input x gradient
    assert got["gradient_x_input"][1] >= got["gradient"][1] * 0.5  # the shared pass is charged to both
    assert (got["gradcam"][0][1] >= 0).all() and (got["gradient"][0][1] >= 0).all()
    np.testing.assert_array_equal(got["random"][0][1], random_map(ctx)[1])


def test_command_writes_the_documented_json(tiny, tmp_path):
    out, js = tmp_path / "out", tmp_path / "q.json"
    code = cli_main(["quality", "--weights", str(tiny), "--n", "3", "--faith-n", "1", "--ig-n", "1", "--ig-steps", "2",
                          "--bootstrap", "50", "--fractions", "5,50", "--min-gap=-1e9", "--out", str(out), "--json", str(js),
                          "--quiet"])
    assert code == 0
    doc = json.loads(js.read_text())
    assert doc == json.loads((out / "quality_tiny.json").read_text())
    assert doc["n_images"] == 3 and doc["model"]["name"] == "tiny.pt" and len(doc["model"]["sha256"]) == 64
    assert {"n", "seed", "faith_n", "ig_n", "ig_steps", "fractions", "k", "tolerance", "bootstrap", "removal_baseline"} <= set(doc["settings"])
    names = [m.name for m in methods()]
    assert list(doc["methods"]) == names
    for m in names:
        for key in ("auc_true", "auc_predicted", "pointing_predicted", "recall_predicted"):
            cell = doc["methods"][m][key]
            assert set(cell) == {"value", "low", "high", "n"}
            assert cell["low"] <= cell["value"] <= cell["high"]
    assert doc["methods"]["integrated_gradients"]["auc_predicted"]["n"] <= 1
    assert "deletion_predicted" in doc["methods"]["paper_total"] and "insertion_true" in doc["methods"]["gradcam"]
    assert set(doc["timings_s"]) == set(names)
    for kind in ("deletion", "insertion"):
        assert Image.open(out / f"{kind}_tiny.png").width > 800
    assert "| Paper: total map |" in (out / "quality_tiny.md").read_text()
    assert "<!-- quality:tiny -->" in (out / "SUMMARY.md").read_text()
    assert "/tmp" not in (out / "SUMMARY.md").read_text()
    again = tmp_path / "again"
    assert cli_main(["quality", "--render", str(js), "--out", str(again)]) == 0
    assert (again / "quality_tiny.md").read_text() == (out / "quality_tiny.md").read_text()


def test_command_on_a_real_photograph(tiny, tmp_path):
    code = cli_main(["quality", "--weights", str(tiny), "--real", str(RETINA), "--methods", "paper_total,gradient,random",
                          "--fractions", "10", "--min-gap=-1e9", "--bootstrap", "20", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    doc = json.loads((tmp_path / "quality_tiny_real.json").read_text())
    assert doc["n_images"] == 1 and doc["data"]["images"] == ["retina.jpg (as taken)"]
    assert set(doc["methods"]["gradient"]) == {"deletion_predicted", "insertion_predicted"}
    assert "1 distinct real photograph" in (tmp_path / "SUMMARY.md").read_text()


def test_bad_options_end_with_one_line(tiny, capsys):
    assert cli_main(["quality", "--weights", str(tiny), "--methods", "nope"]) == 2
    assert cli_main(["quality", "--weights", str(tiny), "--fractions", "0,150"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error:") for line in err)
