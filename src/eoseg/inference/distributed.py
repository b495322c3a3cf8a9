"""Many scenes: one after another in this process, or one Ray task per scene on a cluster.

The unit of work is :func:`~eoseg.inference.predictor.predict_scene` itself, so a Ray run writes exactly
what a local run writes (atomically: a file that exists is complete). Before anything runs:

- scenes whose files are missing are reported (status ``missing``) and the others run;
- with resume (always on Ray; ``--resume`` locally), a scene is skipped only when its completion marker
  ``<scene>.done.json`` matches: the marker is written atomically LAST, after every output of the scene
  is final (the gate / minimum-area second pass and ``heads.json`` included), and records the output
  files (names, sizes, modification times), the input files and a fingerprint of the models and the
  settings that change outputs. A scene without a marker (killed mid-scene, or after its mask but before
  the second pass), with an output changed or missing since, or predicted with other models or settings
  is predicted again (its old marker is removed first).

On Ray each task reserves ``predict.ray.cpus_per_scene`` CPUs (its torch threads) and
``gpus_per_scene`` of a GPU; a task whose worker dies (killed, out of memory, node lost) is run again
up to ``predict.ray.retries`` times; a scene that fails with a user error is reported and the others go
on. Progress counts scenes over the whole list.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eoseg.config.schema import PostSpec, PredictSpec, RaySpec
from eoseg.errors import EosegError, InputError
from eoseg.geo.atomic import check_not_inputs, leftover_temporaries, write_text_atomic
from eoseg.inference.predictor import ensure_writable, output_names, predict_scene
from eoseg.models.bundle import ModelBundle
from eoseg.openmp import wait_policy
from eoseg.progress import make_progress

DEFAULT_GCS_PORT = 6379
RAY_ENV = {"RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
"""Workers use this interpreter's environment as it is (not a fresh `uv run` per worker, which would
package the working folder and re-install the project for every worker). Ray reads it once, when it is
first imported: set it before ``import ray``."""
LOCAL_RAY_ENV = {"RAY_AUTH_MODE": "token"}
"""The local instance that ``--ray`` starts for one command uses token authentication, Ray's default for a new
local cluster (2.60), said explicitly: left unset, Ray prints that it chose it ("Token authentication is enabled
for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out"), nothing a user of eoseg's private instance acts on.
A value the user set is kept; like :data:`RAY_ENV`, it must be set before ``import ray`` (Ray caches its config
then), so a process that imported Ray earlier still gets the note."""
RAY_CLIENT_PREFIX = "ray://"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
MARKER = "done.json"
"""``<scene>.done.json``: the completion marker of a scene, written last."""
MARKER_VERSION = 1
EXECUTION_KEYS = {"device", "workers", "batch_size", "ray"}
"""Predict settings that change how a scene runs, not what it writes (left out of the fingerprint)."""


@dataclass
class SceneReport:
    """What happened to one scene of a multi-scene run."""

    name: str
    status: str  # done, skipped (outputs already complete), missing (input file absent), failed
    outputs: list[Path] = field(default_factory=list)
    windows: int = 0
    pixels: int = 0
    seconds: float = 0.0
    error: str = ""

    @property
    def mpx_per_s(self) -> float:
        return self.pixels / 1e6 / self.seconds if self.seconds > 0 else float("nan")


def missing_inputs(images: dict[str, Path]) -> str:
    """A one-line reason when an image file of the scene does not exist, else ``""``."""
    absent = [f"{name}={path}" for name, path in images.items() if not Path(path).is_file()]
    return f"file not found: {', '.join(absent)}" if absent else ""


def marker_path(out_dir: Path, name: str) -> Path:
    """Where the completion marker of scene ``name`` lives."""
    return Path(out_dir) / f"{name}.{MARKER}"


def fingerprint(bundles: Sequence[ModelBundle], spec: PredictSpec, post: PostSpec) -> str:
    """A digest of what decides a scene's outputs: the models (their checkpoint file's path, size and
    modification time; the weights themselves for a model without a file), their configs and statistics,
    and the ``predict`` (less where and how fast it runs) and ``post`` settings."""
    digest = hashlib.sha256()
    for bundle in bundles:
        source = Path(bundle.source) if bundle.source else None
        if source is not None and source.is_file():
            stat = source.stat()
            digest.update(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        else:
            for key, value in bundle.model.state_dict().items():
                digest.update(key.encode())
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        digest.update(bundle.config.model_dump_json().encode())
        digest.update(json.dumps(bundle.stats, sort_keys=True, default=str).encode())
    digest.update(spec.model_dump_json(exclude=EXECUTION_KEYS).encode())
    digest.update(post.model_dump_json().encode())
    return digest.hexdigest()


def _file_entry(path: Path) -> dict[str, int]:
    stat = Path(path).stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _marker_content(images: dict[str, Path], outputs: Sequence[Path], digest: str) -> dict[str, Any]:
    return {
        "version": MARKER_VERSION,
        "fingerprint": digest,
        "inputs": {n: {"path": str(Path(p).resolve()), **_file_entry(p)} for n, p in images.items()},
        "outputs": {Path(p).name: _file_entry(p) for p in outputs},
    }


def write_marker(out_dir: Path, name: str, images: dict[str, Path], outputs: Sequence[Path], digest: str) -> Path:
    """Write ``<name>.done.json`` atomically: call it only when every output of the scene is final."""
    content = _marker_content(images, outputs, digest)
    return write_text_atomic(marker_path(out_dir, name), json.dumps(content, indent=1, sort_keys=True) + "\n")


def complete(out_dir: Path, name: str, images: dict[str, Path], expected: Sequence[str], digest: str) -> bool:
    """The scene's marker exists and matches: same fingerprint, the ``expected`` output names, every
    output and input file still of the recorded size and modification time."""
    try:
        marker = json.loads(marker_path(out_dir, name).read_text())
        if marker.get("version") != MARKER_VERSION or marker.get("fingerprint") != digest:
            return False
        if not expected or sorted(marker["outputs"]) != sorted(expected):
            return False
        return marker == _marker_content(images, [Path(out_dir) / n for n in marker["outputs"]], digest)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # absent, unreadable, or edited
        return False


def predict_marked(
    bundles: Sequence[ModelBundle],
    images: dict[str, Path],
    out_dir: Path,
    spec: PredictSpec,
    post: PostSpec,
    name: str,
    digest: str,
    progress: bool = True,
) -> SceneReport:
    """``predict_scene`` between removing the scene's old marker (and temporary files of a killed
    attempt) and writing its new marker; a user error becomes a ``failed`` report."""
    out_dir = Path(out_dir)
    marker_path(out_dir, name).unlink(missing_ok=True)  # from here on the old outputs are not complete
    products = re.escape(name) + r"\.[^.]+"  # <name>.<product>.<ext>; never scene <name>.b's files
    for stale in leftover_temporaries(out_dir, products, r"\.part\.[^.]+|\.tiles\.tif"):
        stale.unlink(missing_ok=True)  # temporary files of an attempt that was killed (COG tiles, atomic parts)
    try:
        result = predict_scene(bundles, images, out_dir, spec, post, name, progress)
        report = report_of(result)
        write_marker(out_dir, name, images, result.paths, digest)
    except EosegError as exc:  # a user error: not retried, reported, the other scenes go on
        return SceneReport(name, "failed", error=str(exc))
    return report


def report_of(result: Any) -> SceneReport:
    """The report of a scene that ``predict_scene`` finished (its ``SceneOutputs``)."""
    return SceneReport(result.name, "done", result.paths, result.windows, result.pixels, result.seconds)


def run_scenes(
    bundles: Sequence[ModelBundle],
    scenes: Sequence[dict[str, Path]],
    names: Sequence[str],
    out_dir: Path,
    spec: PredictSpec,
    post: PostSpec,
    progress: bool = True,
    resume: bool | None = None,
) -> list[SceneReport]:
    """Predict every scene (locally, or on Ray when ``spec.ray.enabled``); one report per scene, in order.

    ``resume`` (default: on for Ray) skips scenes whose completion marker matches (see the module).
    Raises nothing for a missing or failing scene: see the reports (the CLI turns them into its exit
    status).
    """
    out_dir = Path(out_dir)
    if spec.ray.enabled:
        connect(spec.ray)  # a wrong address fails here, before anything is written
    inputs = [p for s in scenes for p in s.values()]
    check_not_inputs(inputs, files=[marker_path(out_dir, n) for n in names])
    ensure_writable(out_dir)
    resume = spec.ray.enabled if resume is None else resume
    digest = fingerprint(bundles, spec, post)
    reports: list[SceneReport | None] = [None] * len(scenes)
    todo: list[int] = []
    for i, (images, name) in enumerate(zip(scenes, names, strict=True)):
        reason = missing_inputs(images)
        expected = output_names(bundles, spec, post, name)
        if reason:
            reports[i] = SceneReport(name, "missing", error=reason)
        elif resume and complete(out_dir, name, images, expected, digest):
            reports[i] = SceneReport(name, "skipped", [out_dir / n for n in expected])
        else:
            todo.append(i)
    with make_progress(progress) as bar:
        # the bar counts the scenes that are written (done or skipped): after a failure it stops short of
        # 100 % and says how many did not make it, so it never looks like a success above the error line
        task = bar.add_task("scenes", total=len(scenes))
        for report in reports:
            if report is not None:
                _count(bar, task, report, reports)
        if spec.ray.enabled:
            for i, report in _on_ray(bundles, scenes, names, todo, out_dir, spec, post, digest):
                reports[i] = report
                _count(bar, task, report, reports)
        else:
            for i in todo:
                reports[i] = predict_marked(bundles, scenes[i], out_dir, spec, post, names[i], digest, progress)
                _count(bar, task, reports[i], reports)
    return [r for r in reports if r is not None]


def _count(bar: Any, task: Any, report: SceneReport, reports: Sequence[SceneReport | None]) -> None:
    """Advance the scenes bar for a written scene; name the scenes not predicted so far in its label."""
    if report.status in ("done", "skipped"):
        bar.advance(task)
        return
    bad = sum(r is not None and r.status in ("missing", "failed") for r in reports)
    bar.update(task, description=f"scenes ({bad} not predicted)")


# ------------------------------------------------------------------------------------------------ Ray


def connect(ray_spec: RaySpec) -> None:
    """Use the running Ray instance, join ``address``, or start a local one; InputError when the address
    does not answer within ``connect_timeout`` seconds (no hang)."""
    address = ray_spec.address
    local = address in (None, "", "local")
    if "ray" not in sys.modules:  # Ray reads these when first imported (and its servers inherit them): never after
        for key, value in (RAY_ENV | LOCAL_RAY_ENV if local else RAY_ENV).items():
            os.environ.setdefault(key, value)
    import ray

    if address not in (None, "", "local", "auto"):
        reason = _unanswered(*_host_port(address), ray_spec.connect_timeout)
        if reason:
            raise InputError(
                f"--ray-address {address}: no Ray cluster answers there ({reason}); start one with "
                "`ray start --head`, fix the address, or give --ray without an address for a local instance"
            )
    if ray.is_initialized():  # this process already has one (a caller's, or an earlier run's)
        return
    if local:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"--ray-address {address}: could not join the Ray cluster ({first}); start one with `ray start --head` "
            "or give --ray without an address for a local instance"
        ) from exc


def _unanswered(host: str, port: int, timeout: float) -> str:
    """Why no Ray cluster can answer at ``host:port`` (``""`` when a gRPC server does, as Ray's GCS and Ray
    client servers are): a TCP connect, then the gRPC handshake, each within ``timeout`` seconds. Without
    the handshake, a port where something else listens made ``ray.init`` retry for over a minute."""
    import grpc  # Ray's own transport (a dependency of ray)

    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return f"{why} after at most {timeout:g} s"
    channel = grpc.insecure_channel(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        return f"the port is open but no gRPC server, as Ray runs, answered within {timeout:g} s"
    finally:
        channel.close()
    return ""


def _host_port(address: str) -> tuple[str, int]:
    rest = address[len(RAY_CLIENT_PREFIX) :] if address.startswith(RAY_CLIENT_PREFIX) else address
    host, sep, port = rest.rpartition(":")
    if not sep:
        return rest, DEFAULT_GCS_PORT
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise InputError(f"--ray-address {address}: expected HOST:PORT (e.g. 10.0.0.5:6379) or 'auto'") from None


def _scene_task(
    bundles: list[ModelBundle],
    images: dict[str, Path],
    out_dir: Path,
    spec: PredictSpec,
    post: PostSpec,
    name: str,
    threads: int,
    digest: str,
) -> SceneReport:
    """One scene on a Ray worker (module-level so that workers import it rather than unpickle code)."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)  # resolve_device sizes torch's pool from it
    torch.set_num_threads(threads)
    return predict_marked(bundles, images, out_dir, spec, post, name, digest, progress=False)


def _on_ray(
    bundles: Sequence[ModelBundle],
    scenes: Sequence[dict[str, Path]],
    names: Sequence[str],
    todo: Sequence[int],
    out_dir: Path,
    spec: PredictSpec,
    post: PostSpec,
    digest: str,
):
    """Yield ``(index, report)`` as the scene tasks finish."""
    import ray
    from ray.exceptions import RayError

    if not todo:
        return
    shared = ray.put(list(bundles))  # one copy in the object store for every task
    threads = max(1, int(spec.ray.cpus_per_scene))
    remote = ray.remote(_scene_task).options(
        num_cpus=spec.ray.cpus_per_scene,
        num_gpus=spec.ray.gpus_per_scene,
        max_retries=spec.ray.retries,
        retry_exceptions=False,
        runtime_env={"env_vars": worker_env(threads)},
    )
    worker_spec = spec.model_copy(update={"device": _worker_device(spec)})
    pending = {}
    out_dir = Path(out_dir).resolve()  # Ray workers run in another folder: relative paths would miss
    for i in todo:
        images = {name: Path(path).resolve() for name, path in scenes[i].items()}
        ref = remote.remote(shared, images, out_dir, worker_spec, post, names[i], threads, digest)
        pending[ref] = i
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        ref = ready[0]
        i = pending.pop(ref)
        try:
            report = ray.get(ref)
        except RayError as exc:  # the worker died more than `retries` times, or the task itself crashed
            lines = [ANSI.sub("", line).strip() for line in str(exc).splitlines() if line.strip()]
            report = SceneReport(names[i], "failed", error=f"{type(exc).__name__}: {lines[-1] if lines else ''}")
        yield i, report


def worker_env(threads: int) -> dict[str, str]:
    """Environment of the scene workers, set before their OpenMP starts: ``threads`` OpenMP threads (the
    task's CPU share) that sleep rather than spin while they wait (:func:`eoseg.openmp.wait_policy`:
    ``PASSIVE`` unless the driver sets a policy). Spinning threads of a task that shares its cores with Ray's
    own processes, the reader and writer threads or other tasks made a scene about ten times slower with 2
    threads than with 1 (benchmarks/ray_predict.py)."""
    return {"OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": wait_policy()}


def _worker_device(spec: PredictSpec) -> str:
    """Tasks without a GPU share run on the CPU (``auto`` on a worker might grab a GPU nobody reserved)."""
    if spec.device == "auto" and spec.ray.gpus_per_scene == 0:
        return "cpu"
    return spec.device
