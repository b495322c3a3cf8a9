"""``eoseg predict`` applies the whole ``post`` section of the shipped presets (sizes shrunk), and the
overlay that ``eoseg thresholds`` writes, fed back with ``--post``, reproduces the searched score."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import torch
import yaml
from PIL import Image

from eoseg.cli.app import main
from eoseg.config import load_config
from eoseg.errors import ConfigError
from eoseg.geo.products import IGNORE, mask_classes, read_probabilities
from eoseg.geo.raster import open_raster, write_geotiff
from eoseg.models.factory import build_model
from eoseg.post.search import search_thresholds
from eoseg.post.vectorize import scene_polygons, vectorize
from eoseg.tasks.kinds import build_task_kind, channel_names
from eoseg.training.checkpoint import describe

sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
from inference_helpers import CRS_UTM, TRANSFORM, image_stats, write_scene  # noqa: E402

SHRINK = ["model.encoder=resnet18", "data.chips.size=64", "data.chips.overlap=0", "predict.tta=none"]


def run(*argv: object) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    return exit_info.value.code


def preset_checkpoint(path: Path, preset: str, seed: int = 0, overrides: tuple[str, ...] = (),
                      targets: bool = True) -> Path:
    """A checkpoint of ``preset`` (shrunk, then ``overrides``) with random weights, as `eoseg train` writes it
    (``targets=False``: without ``data.targets``, as a hand-made or imported checkpoint may be)."""
    config = load_config(preset, [*SHRINK, *overrides])
    if not targets:
        config.data.targets = {}
    torch.manual_seed(seed)
    model = build_model(config.model, config.task, 3)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    stats = image_stats(["red", "green", "blue"], mean=120.0, std=60.0)
    torch.save({"eoseg": describe(config, stats, []), "state_dict": state, "epoch": 0, "global_step": 0}, path)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("post")
    rng = np.random.default_rng(3)
    image = rng.integers(1, 255, (3, 96, 128)).astype(np.uint8)
    image[:, :8] = 0  # nodata rows
    scene = write_scene(root / "city.tif", image)
    return root, scene


def mask_of(out: Path, name: str = "city") -> np.ndarray:
    with rasterio.open(out / f"{name}.mask.tif") as src:
        return src.read()


def test_softmax_threshold_and_overlay_reproduce_the_searched_score(setup):
    root, scene = setup
    ckpt = preset_checkpoint(root / "buildings.ckpt", "buildings")
    first = root / "p1"
    assert run("predict", ckpt, scene, "--out", first, "-q", "post.min_area=0") == 0
    with open_raster(first / "city.prob.tif") as src:
        assert src.descriptions == ("background", "building")
        fg = read_probabilities(src)[1]
    valid = np.isfinite(fg)
    assert not valid[:8].any() and valid[8:].all()
    low, high = (float(np.round(np.quantile(fg[valid], q), 3)) for q in (0.3, 0.7))
    # a threshold changes a softmax binary mask (argmax would ignore it): exactly p > t on the written p
    for t in (low, high):
        out = root / f"t{t}"
        assert run("predict", ckpt, scene, "--out", out, "-q", "post.min_area=0", f"post.threshold={t}") == 0
        mask = mask_of(out)[0]
        assert (mask[~valid] == IGNORE).all()
        assert (mask[valid] == (fg[valid] > t)).all()
    assert mask_of(root / f"t{low}").sum() > mask_of(root / f"t{high}")[mask_of(root / f"t{high}") != IGNORE].sum()

    truth = (fg > np.quantile(fg[valid], 0.6)).astype(np.uint8)
    truth ^= np.random.default_rng(5).random(truth.shape) < 0.1
    truth[~valid] = IGNORE
    truth_path = write_geotiff(root / "truth.tif", truth[None], CRS_UTM, TRANSFORM, IGNORE)
    overlay = root / "post.yaml"
    candidates = ",".join(str(float(np.round(np.quantile(fg[valid], q), 3))) for q in (0.2, 0.4, 0.5, 0.6, 0.8))
    assert run("thresholds", first / "city.prob.tif", "-t", truth_path, "--config", "buildings",
               "--thresholds", candidates, "--min-areas", "0,1,3", "--out", overlay) == 0
    post = yaml.safe_load(overlay.read_text())["post"]
    assert isinstance(post["threshold"], float) and post["metric"] == "iou"  # binary: one value; post.metric
    [choice] = search_thresholds([first / "city.prob.tif"], [truth_path], kind="binary",
                                 thresholds=[float(c) for c in candidates.split(",")], min_areas=[0, 1, 3])
    second = root / "p2"
    assert run("predict", ckpt, scene, "--out", second, "-q", "--post", overlay) == 0
    assert load_config(second / "config.yaml").post.threshold == post["threshold"]
    mask = mask_of(second)[0]
    scored = (mask != IGNORE) & (truth != IGNORE)
    tp = int(((mask == 1) & (truth == 1) & scored).sum())
    fp = int(((mask == 1) & (truth == 0) & scored).sum())
    fn = int(((mask == 0) & (truth == 1) & scored).sum())
    assert tp / (tp + fp + fn) == pytest.approx(choice.score, abs=1e-9)


@pytest.mark.parametrize("min_area", [0, 2])  # 2: the mask is rewritten by the minimum-area pass
def test_evaluate_names_a_predicted_binary_mask_by_the_models_classes(setup, min_area):
    root, scene = setup
    ckpt = preset_checkpoint(root / "buildings.ckpt", "buildings")
    out = root / f"named{min_area}"
    assert run("predict", ckpt, scene, "--out", out, "-q", "post.threshold=0.5", f"post.min_area={min_area}") == 0
    with open_raster(out / "city.mask.tif") as src:
        assert mask_classes(src) == ["background", "building"]
    mask = mask_of(out)
    truth = write_scene(root / f"truth{min_area}.tif", mask, nodata=IGNORE)
    assert run("evaluate", out / "city.mask.tif", "--truth", truth, "--out", out / "metrics.json") == 0
    pixel = json.loads((out / "metrics.json").read_text())["pixel"]
    assert list(pixel["per_class"]) == ["background", "building"]
    building = pixel["per_class"]["building"]
    assert (building["tp"], building["fp"], building["fn"]) == (int((mask == 1).sum()), 0, 0)


SIGMOID = ("model.heads.mask.channels=1", "model.heads.mask.activation=sigmoid", "loss.mask={dice: 1.0}")


def test_evaluate_names_a_threshold_vote_of_predicted_probabilities_by_the_models_classes(setup):
    """A 1-band (sigmoid) prob.tif names the mask it gives as mask.tif does, so `ensemble --mode vote
    --threshold` of two models' probabilities writes a mask evaluate reports as 'building'."""
    root, scene = setup
    probs, on = [], []
    for seed in (0, 1):
        ckpt = preset_checkpoint(root / f"sigmoid{seed}.ckpt", "buildings", seed, SIGMOID)
        out = root / f"sigmoid{seed}"
        assert run("predict", ckpt, scene, "--out", out, "-q", "post.min_area=0") == 0
        probs.append(out / "city.prob.tif")
        with open_raster(probs[-1]) as src:
            assert (src.count, src.descriptions, mask_classes(src)) == (1, ("building",), ["background", "building"])
            on.append(read_probabilities(src)[0][8:] > 0.5)
    vote = root / "sigmoid-vote.tif"
    assert run("ensemble", *probs, "--mode", "vote", "--min-votes", "1", "--threshold", "0.5", "--out", vote) == 0
    with open_raster(vote) as src:
        assert mask_classes(src) == ["background", "building"]
        voted = src.read(1)
    assert (voted[8:] == (on[0] | on[1])).all() and (voted[:8] == IGNORE).all()  # 1 of 2; nodata rows
    assert run("evaluate", vote, "--truth", write_scene(root / "vote-truth.tif", voted[None], nodata=IGNORE),
               "--out", root / "vote-metrics.json") == 0
    pixel = json.loads((root / "vote-metrics.json").read_text())["pixel"]
    assert list(pixel["per_class"]) == ["background", "building"]
    assert pixel["per_class"]["building"]["tp"] == int((voted == 1).sum())


def test_a_threshold_vote_of_two_softmax_predictions_is_evaluated_as_predicts_mask(tmp_path):
    """Two softmax predicts (background, building), voted with --threshold: predict's one class band, named
    by the classes (mask_kind tag), not a 2-band 0/1 stack that evaluate would score as multilabel against a
    2-band truth. Against the demo footprints: the building class, and the same IoU as predict's own mask."""
    from eoseg.demo.town import make_town

    town = make_town(tmp_path / "town", seed=2, n_scenes=2, size=128)[-1]
    ckpt = preset_checkpoint(tmp_path / "b.ckpt", "buildings")
    outs = [tmp_path / f"p{i}" for i in range(2)]
    for out in outs:
        assert run("predict", ckpt, town.image, "--out", out, "-q", "post.threshold=0.5", "post.min_area=0") == 0
    probs = [out / f"{town.id}.prob.tif" for out in outs]
    vote = tmp_path / "vote.tif"
    assert run("ensemble", *probs, "--mode", "vote", "--threshold", "0.5", "--out", vote) == 0
    with open_raster(vote) as src, open_raster(outs[0] / f"{town.id}.mask.tif") as single:
        assert (src.count, mask_classes(src)) == (1, ["background", "building"])
        assert np.array_equal(src.read(), single.read())
    scores = []
    for pred in (vote, outs[0] / f"{town.id}.mask.tif"):
        metrics = tmp_path / f"{pred.stem}.json"
        assert run("evaluate", pred, "--truth", town.footprints, "--out", metrics) == 0
        pixel = json.loads(metrics.read_text())["pixel"]
        assert list(pixel["per_class"]) == ["background", "building"]
        scores.append(pixel["per_class"]["building"]["iou"])
    assert scores[0] == scores[1] and 0 < scores[0] < 1


def test_xview2_buildings_are_written_in_pixel_coordinates_without_a_crs(tmp_path):
    """--format xview2 on PNG pairs: the buildings are pixels, so they go to a GeoPackage that says no CRS
    (a GeoJSON was read back as EPSG:4326, the pixel polygons near 0°, 0°). post.threshold=0: every pixel is
    a building, so the one building is the whole 40 x 48 image, in pixels."""
    config = load_config("damage", [*SHRINK, "post.threshold=0", "post.min_area=0"])
    torch.manual_seed(0)
    model = build_model(config.model, config.task, 6)
    bands = {"pre": ["pre_red", "pre_green", "pre_blue"], "post": ["post_red", "post_green", "post_blue"]}
    stats = {**image_stats([*bands["pre"], *bands["post"]], mean=120.0, std=60.0), "bands": bands,
             "nodata": {"pre": None, "post": None}, "dtypes": {"pre": "uint8", "post": "uint8"}}
    ckpt = tmp_path / "damage.ckpt"
    torch.save({"eoseg": describe(config, stats, []), "epoch": 0, "global_step": 0,
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    rng = np.random.default_rng(0)
    for when in ("pre", "post"):
        Image.fromarray(rng.integers(1, 255, (40, 48, 3)).astype(np.uint8)).save(tmp_path / f"test_{when}_00007.png")
    pair = f"pre={tmp_path / 'test_pre_00007.png'},post={tmp_path / 'test_post_00007.png'}"
    out = tmp_path / "pred"
    assert run("predict", ckpt, pair, "--out", out, "--format", "xview2", "-q") == 0
    assert not (out / "00007.buildings.geojson").exists()
    buildings = gpd.read_file(out / "00007.buildings.gpkg")
    assert buildings.crs is None
    assert len(buildings) == 1 and buildings.geometry[0].bounds == (0.0, 0.0, 48.0, 40.0)
    assert buildings["damage"].iloc[0] in (1, 2, 3, 4)


FBC = ("data.targets.mask.extra_channels=[boundary, contact]", "model.heads.dice.channels=3")


@pytest.mark.parametrize(("preset", "overrides", "head", "names"), [
    ("buildings", (), "dice", ["building"]),
    ("buildings", FBC, "dice", ["building", "boundary", "contact"]),  # the recipe's footprint/boundary/contact
    ("buildings", ("model.heads.dice.channels=3",), "dice", ["dice_0", "dice_1", "dice_2"]),  # no extras named
    ("buildings", (), "mask", ["background", "building"]),
    ("damage", (), "damage", ["no-damage", "minor-damage", "major-damage", "destroyed"]),
    ("damage", (), "mask", ["mask"]),  # any of four damage classes is a building: no one class names it
    ("clouds", (), "mask", ["fish", "flower", "gravel", "sugar"]),
    ("geopose", (), "height", ["height"]),
])
def test_channel_names_say_what_each_channel_of_a_head_learns(preset, overrides, head, names):
    config = load_config(preset, [*SHRINK, *overrides])
    assert channel_names(config, head) == names
    assert build_task_kind(config).channel_names(config, head) == names  # training's task kind: the same rule


@pytest.mark.parametrize(("preset", "overrides", "head", "names"), [
    ("buildings", (), "dice", ["building"]),
    ("buildings", FBC, "dice", ["dice_0", "dice_1", "dice_2"]),  # the extras' names lived in the target
    ("damage", (), "damage", ["no-damage", "minor-damage", "major-damage", "destroyed"]),
])
def test_channel_names_need_no_targets(preset, overrides, head, names):
    config = load_config(preset, [*SHRINK, *overrides])
    config.data.targets = {}  # a hand-made or imported checkpoint's config
    with pytest.raises(ConfigError, match="is not a target of data.targets"):
        build_task_kind(config)  # the training-time check predict must not run
    assert channel_names(config, head) == names


LABELLED_BACKGROUND = ("data.classes=[background, fish, flower, gravel, sugar]",)  # multilabel, a background class
SIGMOID_FBC = ("model.heads.mask.channels=3", "model.heads.mask.activation=sigmoid",
               "data.targets.mask.extra_channels=[boundary, contact]")  # the main head: footprint/boundary/contact


@pytest.mark.parametrize(("preset", "overrides", "prob", "mask"), [
    ("buildings", (), ("background", "building"), ("class",)),
    ("damage", (), ("mask",), ("class",)),  # one channel, five classes: the head's name (was mask_0)
    ("clouds", (), ("fish", "flower", "gravel", "sugar"), ("fish", "flower", "gravel", "sugar")),
    ("clouds", LABELLED_BACKGROUND, ("fish", "flower", "gravel", "sugar"),  # the labels (was mask_0..3)
     ("fish", "flower", "gravel", "sugar")),
    ("buildings", SIGMOID_FBC, ("building", "boundary", "contact"),  # the target's channels (was mask_0..2)
     ("class",)),  # the mask is the building mask (boundary and contact stay in prob.tif)
])
def test_probability_bands_are_named_like_every_heads_channels(preset, overrides, prob, mask):
    """prob.tif's (and a multilabel mask's) band descriptions come from channel_names, the rule of every
    value head's raster, so QGIS and `eoseg evaluate` show what each band holds, not <head>_<i>."""
    from types import SimpleNamespace

    from eoseg.inference.outputs import plan_outputs, scene_rasters

    config = load_config(preset, [*SHRINK, *overrides])
    plan = plan_outputs(config.model.heads, config, config.predict, config.post, 1)
    scene = SimpleNamespace(reference=SimpleNamespace(width=8, height=8, crs=None, transform=TRANSFORM))
    bands = {r.kind: r.spec.band_names for r in scene_rasters(plan, scene, Path("out"), "s")}
    assert (bands["prob"], bands["mask"]) == (prob, mask)
    assert bands["prob"] == tuple(channel_names(config, plan.main))


def test_a_footprint_head_with_extra_channels_masks_the_building_channel_only(setup):
    """A sigmoid main head learning footprint, boundary and contact gives the 1-band building mask that
    training validation scores (channel 0 > post.threshold), tagged with its classes, not a 0/1 band per
    channel that `eoseg evaluate` / `vectorize` took for three labels; prob.tif keeps all three channels."""
    from eoseg.post.ensemble import ensemble_rasters

    root, scene = setup
    ckpt = preset_checkpoint(root / "sigmoid-fbc.ckpt", "buildings", overrides=SIGMOID_FBC)
    out = root / "sigmoid-fbc"
    assert run("predict", ckpt, scene, "--out", out, "-q", "post.min_area=0", "post.threshold=0.5") == 0
    with open_raster(out / "city.prob.tif") as src:
        assert src.descriptions == ("building", "boundary", "contact")
        assert (src.tags()["mask_kind"], src.tags()["extra_channels"]) == ("binary", "2")
        prob = read_probabilities(src)
    with open_raster(out / "city.mask.tif") as src:
        assert (src.count, src.descriptions, mask_classes(src)) == (1, ("class",), ["background", "building"])
    mask, valid = mask_of(out)[0], np.isfinite(prob).all(axis=0)
    assert (mask[~valid] == IGNORE).all()
    assert (mask[valid] == (prob[0][valid] > 0.5)).all()
    assert 0 < mask[valid].sum() < valid.sum()  # random weights: both classes, so the check means something
    assert ((prob[1:] > 0.5).any(axis=0) != (prob[0] > 0.5))[valid].any()  # the extras would have differed
    voted = ensemble_rasters([out / "city.prob.tif"], root / "fbc-vote.tif", "vote", threshold=0.5)
    with open_raster(voted) as src:  # the vote of its prob.tif reads the tags: predict's building mask
        assert (src.count, mask_classes(src)) == (1, ["background", "building"])
        assert (src.read(1) == mask).all()
    truth = write_geotiff(root / "fbc-truth.tif", mask[None], CRS_UTM, TRANSFORM, IGNORE)
    overlay = root / "fbc-post.yaml"  # thresholds reads both tags: binary, on the building channel
    assert run("thresholds", out / "city.prob.tif", "-t", truth, "--thresholds", "0.3,0.5,0.7", "--out", overlay) == 0
    assert yaml.safe_load(overlay.read_text())["post"]["threshold"] == 0.5
    assert "# channel 0: iou 1.0000" in overlay.read_text()


def test_predict_vote_of_two_softmax_models_is_the_and_of_their_masks(setup):
    """predict.vote takes 2-channel softmax heads (binary: one class band; only multiclass is refused), as the
    sar-buildings page says: 2 of 2 is on where both models' masks are."""
    root, scene = setup
    ckpts = [preset_checkpoint(root / f"vote{seed}.ckpt", "buildings", seed=seed) for seed in (0, 1)]
    masks = []
    for i, ckpt in enumerate(ckpts):
        assert run("predict", ckpt, scene, "--out", root / f"single{i}", "-q", "post.min_area=0") == 0
        masks.append(mask_of(root / f"single{i}")[0])
    assert run("predict", *ckpts, scene, "--out", root / "voted", "-q", "post.min_area=0", "predict.vote=2") == 0
    with open_raster(root / "voted" / "city.mask.tif") as src:
        assert (src.count, mask_classes(src)) == (1, ["background", "building"])
    voted, valid = mask_of(root / "voted")[0], masks[0] != IGNORE
    assert (voted[valid] == ((masks[0] == 1) & (masks[1] == 1))[valid]).all()
    assert (masks[0] != masks[1])[valid].any() and (voted[~valid] == IGNORE).all()


def test_a_multilabel_prediction_with_a_background_class_names_its_bands_by_label(setup):
    root, scene = setup
    ckpt = preset_checkpoint(root / "clouds-bg.ckpt", "clouds", overrides=LABELLED_BACKGROUND)
    out = root / "clouds-bg"
    assert run("predict", ckpt, scene, "--out", out, "-q", "post.gate=null") == 0
    for product in ("prob", "mask"):
        with open_raster(out / f"city.{product}.tif") as src:
            assert src.descriptions == ("fish", "flower", "gravel", "sugar")


def test_a_value_heads_raster_bands_are_named_by_its_channels(setup):
    root, scene = setup
    ckpt = preset_checkpoint(root / "fbc.ckpt", "buildings", overrides=FBC)
    out = root / "fbc"
    assert run("predict", ckpt, scene, "--out", out, "-q") == 0
    with open_raster(out / "city.dice.tif") as src:
        assert src.descriptions == ("building", "boundary", "contact")
        assert src.count == 3


def test_a_checkpoint_without_targets_predicts_and_names_its_bands(setup):
    root, scene = setup
    ckpt = preset_checkpoint(root / "untargeted.ckpt", "buildings", targets=False)
    assert torch.load(ckpt, weights_only=True)["eoseg"]["config"]["data"]["targets"] == {}
    out = root / "untargeted"
    assert run("predict", ckpt, scene, "--out", out, "-q") == 0
    with open_raster(out / "city.dice.tif") as src:
        assert src.descriptions == ("building",)
    with open_raster(out / "city.prob.tif") as src:
        assert src.descriptions == ("background", "building")


def test_gate_empties_channels_whose_image_probability_is_below_the_threshold(setup):
    root, scene = setup
    ckpt = preset_checkpoint(root / "clouds.ckpt", "clouds")
    outs = {}
    for label, override in [("none", "post.gate=null"), ("open", "post.gate.threshold=0.0"),
                            ("shut", "post.gate.threshold=1.0")]:
        outs[label] = root / f"g-{label}"
        assert run("predict", ckpt, scene, "--out", outs[label], "-q", override) == 0
    heads = json.loads((outs["shut"] / "city.heads.json").read_text())
    assert len(heads["image_class"]["mean"]) == 4
    ungated, opened, shut = (mask_of(outs[k]) for k in ("none", "open", "shut"))
    assert ungated.shape == (4, 96, 128) and ungated[ungated != IGNORE].sum() > 0
    assert (opened == ungated).all()  # every image probability is > 0
    assert (shut[shut != IGNORE] == 0).all() and ((shut == IGNORE) == (ungated == IGNORE)).all()


def test_predict_polygons_from_the_final_mask_with_post_simplify(setup):
    root, scene = setup
    ckpt = preset_checkpoint(root / "poly.ckpt", "buildings")
    plain = root / "poly-off"
    one_scale = "predict.tta_scales=[1.0]"
    assert run("predict", ckpt, scene, "--out", plain, "-q", one_scale) == 0
    assert not list(plain.glob("*.gpkg"))  # predict.polygons is off by default
    with open_raster(plain / "city.prob.tif") as src:
        fg = read_probabilities(src)[1]
    t = float(np.round(np.quantile(fg[np.isfinite(fg)], 0.6), 3))
    frames = {}
    for simplify in (0.0, 1.0):
        out = root / f"poly-{simplify}"
        assert run("predict", ckpt, scene, "--out", out, "-q", one_scale, "predict.polygons=true",
                   f"post.threshold={t}", "post.min_area=2", f"post.simplify={simplify}") == 0
        frames[simplify] = gpd.read_file(out / "city.polygons.gpkg")
    traced = vectorize(root / "poly-0.0" / "city.mask.tif", prob=root / "poly-0.0" / "city.prob.tif")
    exact, simple = frames[0.0], frames[1.0]
    assert len(exact) == len(traced) > 3 and set(exact["class"]) == {1}
    assert exact["area_m2"].sum() == pytest.approx(traced["area_m2"].sum())
    assert exact["mean_prob"].to_numpy() == pytest.approx(traced["mean_prob"].to_numpy())
    assert exact["area_m2"].min() >= 2.0  # post.min_area was applied to the mask they are traced from
    vertices = {k: int(shapely.get_num_coordinates(f.geometry.to_numpy()).sum()) for k, f in frames.items()}
    assert vertices[1.0] < vertices[0.0]  # post.simplify (CRS units) simplified them
    assert exact.crs == simple.crs and exact.crs.to_epsg() == 32616


def test_multilabel_scene_polygons_trace_every_label_band(tmp_path):
    mask = np.zeros((2, 8, 8), np.uint8)
    mask[0, :3, :3] = 1
    mask[1, 4:, 4:] = 1
    mask[1, 0, 0] = 1  # labels overlap
    prob = np.stack([np.full((8, 8), 0.25), np.full((8, 8), 0.75)]).astype(np.float32)
    mask_path = write_geotiff(tmp_path / "c.mask.tif", mask, CRS_UTM, TRANSFORM, IGNORE)
    prob_path = write_geotiff(tmp_path / "c.prob.tif", prob, CRS_UTM, TRANSFORM, None)
    out = scene_polygons(mask_path, tmp_path / "c.polygons.gpkg", prob=prob_path, multilabel=True)
    frame = gpd.read_file(out).sort_values(["class", "area_m2"]).reset_index(drop=True)
    assert frame["class"].tolist() == [1, 2, 2]
    assert frame["area_m2"].tolist() == pytest.approx([9 * 0.25, 0.25, 16 * 0.25])
    assert frame["mean_prob"].tolist() == pytest.approx([0.25, 0.75, 0.75])
