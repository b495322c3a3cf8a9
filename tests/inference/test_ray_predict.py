"""Many scenes on Ray: one task per scene, outputs identical to a local run, resume, retry of a killed
worker, scene lists with missing files, a VRT mosaic, and an unreachable address (one line, no hang)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from inference_helpers import image_stats, make_bundle, write_scene
from torch import nn

from eoseg.cli.app import main
from eoseg.config.schema import ChipSpec, DataSpec, ExperimentConfig, ModelSpec, PostSpec, PredictSpec, RaySpec
from eoseg.errors import InputError
from eoseg.inference.distributed import RAY_ENV, connect, run_scenes, worker_env
from eoseg.models.factory import build_model
from eoseg.training.checkpoint import describe

for _key, _value in RAY_ENV.items():  # before Ray is imported (it reads them once, on import)
    os.environ.setdefault(_key, _value)
ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # Ray start-up and worker imports take seconds; still run in CI


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


def pixels(folder) -> dict[str, np.ndarray]:
    """Every raster's pixels (and internal masks), by file name."""
    out = {}
    for path in sorted(folder.glob("*.tif")):
        with rasterio.open(path) as src:
            out[path.name] = np.concatenate([src.read().reshape(-1), src.read_masks(1).reshape(-1)])
    return out


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for every test of this module (starting Ray takes seconds)."""
    here = str(Path(__file__).parent)  # workers import this module and its helpers (the test models)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 2**20)
    yield
    ray.shutdown()


class TinyConv(nn.Module):
    """A 3x3 convolution (the pipeline-cost model): cheap, deterministic."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mask": self.conv(x)}


class ThreadProbe(TinyConv):
    """TinyConv that notes, per process, its torch threads and OpenMP wait policy in ``folder``."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = str(folder)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        note = Path(self.folder) / f"threads-{os.getpid()}.txt"
        env = os.environ
        note.write_text(f"{torch.get_num_threads()} {env.get('OMP_NUM_THREADS')} {env.get('OMP_WAIT_POLICY')}")
        return super().forward(x)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        array = rng.integers(1, 255, (1, 70 + 10 * i, 90)).astype(np.uint8)
        paths.append(write_scene(folder / f"tile{i}.tif", array))
    return paths


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real eoseg checkpoint of a very small random Unet."""
    config = ExperimentConfig(
        data=DataSpec(chips=ChipSpec(size=32, overlap=0)),
        model=ModelSpec(arch="Unet", encoder="resnet18", arch_params={"encoder_depth": 1, "decoder_channels": [4]}),
    )
    torch.manual_seed(0)
    model = build_model(config.model, config.task, 1)
    ckpt = tmp_path_factory.mktemp("ckpt") / "m.ckpt"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    stats = image_stats(["image"], mean=128.0, std=64.0)
    torch.save({"eoseg": describe(config, stats, []), "state_dict": state, "epoch": 0, "global_step": 0}, ckpt)
    return ckpt


def spec(**ray: object) -> PredictSpec:
    return PredictSpec(device="cpu", window=32, overlap=8, ray=RaySpec(enabled=bool(ray), **ray))


def test_ray_run_equals_local_run_then_resumes(ray_instance, scenes, tmp_path) -> None:
    probes = tmp_path / "probes"
    probes.mkdir()
    bundle = make_bundle(ThreadProbe(probes), chip=32, mean=128.0, std=64.0)
    images = [{"image": p} for p in scenes]
    names = [p.stem for p in scenes]
    local = run_scenes([bundle], images, names, tmp_path / "local", spec(), PostSpec(), progress=False)
    on_ray = run_scenes(
        [bundle], images, names, tmp_path / "ray", spec(cpus_per_scene=1), PostSpec(), progress=False
    )
    assert [r.status for r in local] == [r.status for r in on_ray] == ["done"] * 3, [r.error for r in on_ray]
    a, b = pixels(tmp_path / "local"), pixels(tmp_path / "ray")
    assert sorted(a) == sorted(b) == sorted(f"tile{i}.{k}.tif" for i in range(3) for k in ("mask", "prob"))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not [p for p in (tmp_path / "ray").iterdir() if p.name.startswith(".")]  # no temporary files left
    workers = {p.read_text() for p in probes.iterdir() if p.name != f"threads-{os.getpid()}.txt"}
    assert workers == {f"1 1 {worker_env(1)['OMP_WAIT_POLICY']}"}  # the task's CPU share, threads that sleep
    assert sorted(p.name for p in (tmp_path / "ray").glob("*.done.json")) == [f"tile{i}.done.json" for i in range(3)]
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").iterdir()}
    (tmp_path / "ray" / "tile1.done.json").unlink()  # killed after its rasters, before its marker: incomplete
    again = run_scenes(
        [bundle], images, names, tmp_path / "ray", spec(cpus_per_scene=1), PostSpec(), progress=False
    )
    assert [r.status for r in again] == ["skipped", "done", "skipped"]
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").iterdir()}
    assert after["tile0.mask.tif"] == stamp["tile0.mask.tif"]  # complete scenes untouched
    assert after["tile1.prob.tif"] != stamp["tile1.prob.tif"] and (tmp_path / "ray" / "tile1.done.json").is_file()
    np.testing.assert_array_equal(pixels(tmp_path / "ray")["tile1.prob.tif"], a["tile1.prob.tif"])


def test_killed_worker_scene_is_retried_and_equals_a_local_run(ray_instance, scenes, tmp_path) -> None:
    marker = tmp_path / "killed-once"

    class DiesOnce(TinyConv):
        """Kills its worker process on the third batch of the first attempt (mid-scene)."""

        calls = 0

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            type(self).calls += 1
            if type(self).calls == 3 and not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(1)  # like SIGKILL / out of memory: no cleanup, temporary files left behind
            return super().forward(x)

    # local reference first (the marker does not exist yet, but the local process is not a Ray worker)
    local_bundle = make_bundle(TinyConv(), chip=32, mean=128.0, std=64.0)
    images = [{"image": scenes[1]}]
    ref = run_scenes([local_bundle], images, ["tile1"], tmp_path / "local", spec(), PostSpec(), progress=False)
    assert ref[0].status == "done"
    bundle = make_bundle(DiesOnce(), chip=32, mean=128.0, std=64.0)
    batch_of_one = spec(cpus_per_scene=1, retries=2).model_copy(update={"batch_size": 1})
    reports = run_scenes([bundle], images, ["tile1"], tmp_path / "ray", batch_of_one, PostSpec(), progress=False)
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker really died
    assert reports[0].status == "done"
    a, b = pixels(tmp_path / "local"), pixels(tmp_path / "ray")
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_cli_relative_scene_list_with_a_missing_file_runs_the_others_and_mosaics(
    ray_instance, scenes, checkpoint, tmp_path, capsys, monkeypatch
) -> None:
    """As the README runs it: a relative CSV and a relative --out from the user's folder (workers run in
    another folder: this failed before the paths were resolved for them)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lists").mkdir()
    rows = [f"{p.stem},{os.path.relpath(p, tmp_path / 'lists')}" for p in scenes]
    rows.insert(2, "nowhere,nowhere.tif")
    Path("lists/scenes.csv").write_text("id,image\n" + "\n".join(rows) + "\n")
    inputs = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in [*scenes, checkpoint, "lists/scenes.csv"]}
    argv = ["predict", str(checkpoint), "--scenes", "lists/scenes.csv", "--out", "pred", "--ray", "--mosaic", "-q"]
    argv += ["predict.overlap=8", "predict.ray.cpus_per_scene=1"]
    assert run(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1] == (  # after the summary table
        "error: 1 of 4 scene(s) not predicted (the others are written); first: nowhere: file not found: "
        f"image={Path('lists') / 'nowhere.tif'}"  # as the list gives it, from the user's folder
    )
    assert "Traceback" not in captured.err
    assert {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in inputs} == inputs
    out = tmp_path / "pred"
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(
        ["config.yaml", "mosaic.mask.vrt", "mosaic.prob.vrt"]
        + [f"tile{i}.{k}" for i in range(3) for k in ("mask.tif", "prob.tif", "done.json")]
    )
    with rasterio.open(out / "mosaic.mask.vrt") as vrt, rasterio.open(out / "tile2.mask.tif") as tile:
        assert (vrt.width, vrt.height) == (90, 90)  # union of the tiles (same origin, heights 70..90)
        assert vrt.crs == tile.crs and vrt.transform == tile.transform
        np.testing.assert_array_equal(vrt.read(1), tile.read(1))  # the largest tile covers the others
    with rasterio.open(out / "mosaic.prob.vrt") as vrt:
        assert vrt.read_masks(1).all()  # uint8 probabilities: validity through the mask band
    assert "missing" in captured.out + captured.err


@pytest.fixture
def silent_port():
    """A local port where something listens, accepts and never speaks (a wrong port: ssh, a database)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()
    for conn in accepted:
        conn.close()


@pytest.mark.parametrize(("kind", "reason"), [
    ("closed", "Connection refused after at most 2 s"),
    ("silent", "the port is open but no gRPC server, as Ray runs, answered within 2 s"),
])
def test_unreachable_ray_address_is_one_line_without_a_hang(
    tmp_path, scenes, checkpoint, capsys, request, kind, reason
) -> None:
    """Nothing at the port (refused at once), or a port where something else listens (ray.init retried
    for over a minute): one line within the timeout, exit 2, nothing written, inputs unchanged."""
    address = "127.0.0.1:9" if kind == "closed" else f"127.0.0.1:{request.getfixturevalue('silent_port')}"
    expected = (f"error: --ray-address {address}: no Ray cluster answers there ({reason}); start one with "
                "`ray start --head`, fix the address, or give --ray without an address for a local instance")
    started = time.perf_counter()
    with pytest.raises(InputError, match=re.escape(expected.removeprefix("error: "))):
        connect(RaySpec(enabled=True, address=address, connect_timeout=2))
    scene = str(scenes[0])
    before = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in (scene, checkpoint)}
    out = tmp_path / "out"
    argv = ["predict", str(checkpoint), scene, "--out", str(out), "--ray-address", address, "-q"]
    argv.append("predict.ray.connect_timeout=2")
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err == expected + "\n"  # one line, no traceback
    assert not out.exists()  # nothing written
    assert {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in (scene, checkpoint)} == before
    assert time.perf_counter() - started < 15  # two probes of at most 2 s each, twice (no minute of retries)


def test_csv_scene_list_names_outputs_by_id_locally(scenes, checkpoint, tmp_path, capsys) -> None:
    folder = tmp_path / "lists"
    folder.mkdir()
    csv = folder / "list.csv"
    relative = os.path.relpath(scenes[1], folder)  # relative paths are taken from the CSV's folder
    csv.write_text(f"id,region,image,mask\na0,r,{scenes[0]},\na1,r,{relative},\n")
    out = tmp_path / "pred"
    argv = ["predict", str(checkpoint), "--scenes", str(csv), "--out", str(out), "predict.overlap=8", "-q"]
    assert run(argv) == 0
    names = ["a0.done.json", "a0.mask.tif", "a0.prob.tif", "a1.done.json", "a1.mask.tif", "a1.prob.tif", "config.yaml"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert "done" in capsys.readouterr().err  # the summary table (on stderr with the progress)
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "a1.done.json").unlink()  # a1 was interrupted before its marker
    assert run([*argv, "--resume"]) == 0  # local resume: a0 is complete, a1 is not
    table = capsys.readouterr().err
    assert "skipped" in table and "done" in table
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert after["a0.mask.tif"] == stamp["a0.mask.tif"] and after["a1.mask.tif"] != stamp["a1.mask.tif"]


def test_cli_ray_prints_only_the_summary(scenes, checkpoint, tmp_path) -> None:
    """``eoseg predict --ray`` in a fresh process (its own local Ray): eoseg's summary table, none of Ray's start-up
    notes (Ray 2.60 said "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt
    out", an eoseg user's private instance's default)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    result = subprocess.run([sys.executable, "-m", "eoseg", "predict", str(checkpoint), str(scenes[0]), "--out",
                             str(tmp_path / "out"), "-q", "--ray"], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines[0].strip() == "eoseg predict", lines  # the table's title, then the table
    assert all(line[0] in "┏┃┡│└" for line in lines[1:]), lines
    assert any("tile0" in line and "done" in line for line in lines)
