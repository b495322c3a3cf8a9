"""The error printer prints text literally and warnings as one line; signals stop cleanly; a failed command
leaves no empty folder it created."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import eoseg_process, hashes, run, write_scene

from eoseg.cli.app import main
from eoseg.cli.runtime import INTERRUPTED, missing_folders, output_folders, remove_if_empty, warning_printer


@pytest.mark.parametrize("path", ["x/[v2]/a.tif", "x/[/a.tif", "[bold]x[/bold].tif"])
def test_brackets_in_a_path_are_printed_literally(tmp_path, capsys, path):
    """``[v2]`` used to vanish and ``[/`` crashed the printer itself (rich's MarkupError)."""
    code, line = run(capsys, "evaluate", path, "--truth", "y/[/b.gpkg")
    assert code == 2
    assert line == f"error: {path} (argument PRED): prediction file does not exist; check the path"


def test_brackets_in_a_message_survive(rasters, tmp_path, capsys):
    before = hashes(tmp_path)
    prob = rasters["prob"]
    code, line = run(capsys, "ensemble", prob, prob, "--weights", "1", "--out", tmp_path / "o.tif")
    assert code == 2
    assert line.startswith("error: ensemble weights: need 2 non-negative values") and "got [" in line
    assert hashes(tmp_path) == before


def test_a_warning_is_one_line_without_source(capsys):
    with warning_printer():
        warnings.warn("first line\n  second [line]", UserWarning, stacklevel=1)
    assert capsys.readouterr().err.strip() == "warning: first line second [line]"


def test_a_failed_command_removes_the_folders_it_created(tmp_path, capsys):
    out = tmp_path / "new" / "pred"
    code, line = run(capsys, "predict", tmp_path / "missing.ckpt", tmp_path / "s.tif", "--out", out)
    assert code == 2 and "missing.ckpt: checkpoint not found" in line
    assert not (tmp_path / "new").exists()


def test_empty_folder_cleanup_never_removes_files(tmp_path):
    args = ["--out", str(tmp_path / "a" / "b"), "train.out=" + str(tmp_path / "c")]
    created = missing_folders(output_folders(args))
    assert set(created) == {tmp_path / "a" / "b", tmp_path / "a", tmp_path / "c"}
    (tmp_path / "a" / "b" / "x").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "kept.txt").write_text("finished")
    remove_if_empty(created)
    assert not (tmp_path / "a").exists() and (tmp_path / "c" / "kept.txt").read_text() == "finished"


def _wait_for_temporaries(out: Path, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 240
    while not list(out.glob(".city.*")) and alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    # no sleep after they appear: the faster pipeline (9c22a7e..414e3aa) finished a 1,536² scene within the
    # 0.3 s once slept here, so the interrupt landed after its outputs were in place (CI, 2026-12-03)


@pytest.fixture
def busy(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A scene that takes several seconds even on an idle machine, and an output folder holding an earlier
    finished output."""
    scene = write_scene(tmp_path / "city.tif", np.full((1, 3072, 3072), 7, np.uint8))
    out = tmp_path / "pred"
    out.mkdir()
    (out / "earlier.mask.tif").write_bytes(b"finished output of an earlier run")
    return scene, out, hashes(out)


@pytest.mark.slow
def test_sigterm_stops_predict_cleanly(busy, checkpoint):
    """``timeout``/SIGTERM mid-scene: one line, exit 143, no hidden temporaries, earlier outputs unchanged."""
    scene, out, before = busy
    process = eoseg_process("predict", checkpoint, scene, "--out", out, "-q")
    _wait_for_temporaries(out, lambda: process.poll() is None)
    assert process.poll() is None, "predict ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["earlier.mask.tif"]
    assert hashes(out) == before


@pytest.mark.slow
def test_ctrl_c_stops_predict_cleanly(busy, checkpoint, capsys):
    """SIGINT (Ctrl+C) mid-scene, in this process: exit 130 and the same guarantees."""
    scene, out, before = busy
    finished = threading.Event()

    def interrupt() -> None:
        _wait_for_temporaries(out, lambda: not finished.is_set())
        if not finished.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["predict", str(checkpoint), str(scene), "--out", str(out), "-q"])
    finally:
        finished.set()
        thread.join()
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == INTERRUPTED
    assert sorted(p.name for p in out.iterdir()) == ["earlier.mask.tif"]
    assert hashes(out) == before
