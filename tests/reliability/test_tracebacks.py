"""No tracebacks: output folders that are files, read-only or full; a manifest listing deleted chips;
checkpoints whose entries do not fit their weights; weight files that are text or empty. Each is one line,
exit 2, and nothing written earlier changes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from reliability_helpers import hashes, run, write_checkpoint, write_scene
from test_data_loss import noisy_scene

EDITED = "the file was edited or mixed from different runs: use a .ckpt as `eoseg train` wrote it"
CHIPS = ["data.chips.size=64", "data.chips.overlap=0", "data.folds=2"]
TRAIN = ["data.chips.size=64", "data.chips.overlap=0", "train.epochs=1", "train.batch_size=1", "--quiet"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset prepared by the CLI from the demo preset: two scenes (one per fold) of four 64 px chips each."""
    from eoseg.cli.app import main

    folder = tmp_path_factory.mktemp("prepared")
    scenes = noisy_scene(folder, size=128)
    scenes.write_text(scenes.read_text() + "city,scene.tif,b.gpkg\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "demo", "--scenes", str(scenes), "--out", str(folder / "chips"), "--quiet", *CHIPS])
    assert exit_info.value.code == 0
    return folder / "chips"


def mount_tmpfs(folder: Path, options: str) -> None:
    """Mount a 1 MiB tmpfs at ``folder`` (skip with the reason where mounting is not permitted)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({mounted.stderr.strip() or 'mount failed'}); root ignores permissions, "
                    "so read-only and full disks need a mount")


@pytest.fixture
def read_only_disk(tmp_path: Path):
    """A read-only file system holding one earlier output ``earlier/kept.txt`` (written before the remount)."""
    disk = tmp_path / "ro"
    mount_tmpfs(disk, "size=1m")
    try:
        (disk / "earlier").mkdir()
        (disk / "earlier" / "kept.txt").write_text("finished earlier")
        remount = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only ({remount.stderr.strip()})")
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 1 MiB tmpfs filled to the last byte."""
    disk = tmp_path / "full"
    mount_tmpfs(disk, "size=1m")
    try:
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\xff" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# ---------------------------------------------------------------------------------------- output folders


def test_train_out_that_is_a_file(prepared, tmp_path, capsys):
    (tmp_path / "runs").write_text("not a folder")
    before = hashes(tmp_path, prepared)
    code, line = run(capsys, "train", "demo", f"data.root={prepared}", f"train.out={tmp_path / 'runs'}", *TRAIN)
    assert (code, line) == (2, f"error: {tmp_path / 'runs' / 'demo'}: {tmp_path / 'runs'} is a file, not a folder; "
                               "choose another train.out")
    assert hashes(tmp_path, prepared) == before


def test_predict_out_that_is_a_file(checkpoint, tmp_path, capsys):
    scene = write_scene(tmp_path / "city.tif", np.full((1, 64, 64), 7, np.uint8))
    (tmp_path / "pred").write_text("not a folder")
    before = hashes(tmp_path)
    code, line = run(capsys, "predict", checkpoint, scene, "--out", tmp_path / "pred", "-q")
    assert (code, line) == (2, f"error: {tmp_path / 'pred'}: is a file, not a folder; choose another --out")
    assert hashes(tmp_path) == before


def test_train_on_a_full_disk(prepared, full_disk, capsys):
    before = hashes(prepared)
    code, line = run(capsys, "train", "demo", f"data.root={prepared}", f"train.out={full_disk / 'runs'}", *TRAIN)
    assert code == 2
    assert line.startswith(f"error: {full_disk / 'runs' / 'demo'}/") and "could not write the output (disk full" in line
    assert not [p for p in full_disk.rglob("*") if p.is_file() and p.name != "filler"]  # no partial file
    assert hashes(prepared) == before


@pytest.mark.parametrize("command", ["prepare", "train", "predict", "evaluate", "export"])
def test_read_only_output_folder(command, prepared, read_only_disk, checkpoint, rasters, tmp_path, capsys):
    """As root, permissions are ignored: a read-only mount is what refuses the writes."""
    scene = write_scene(tmp_path / "city.tif", np.full((1, 64, 64), 7, np.uint8))
    scenes = noisy_scene(tmp_path / "scenes", size=64)
    args, out = {
        "evaluate": (["evaluate", rasters["mask"], "--truth", rasters["truth"], "--out", read_only_disk / "m.json"],
                     read_only_disk / "m.json"),
        "export": (["export", checkpoint, "--out", read_only_disk / "m.onnx"], read_only_disk / "m.onnx"),
        "prepare": (["prepare", "demo", "--scenes", scenes, "--out", read_only_disk / "chips", "--quiet", *CHIPS],
                    read_only_disk / "chips"),
        "train": (["train", "demo", f"data.root={prepared}", f"train.out={read_only_disk / 'runs'}", *TRAIN],
                  read_only_disk / "runs" / "demo"),
        "predict": (["predict", checkpoint, scene, "--out", read_only_disk / "pred", "-q"], read_only_disk / "pred"),
    }[command]
    before = hashes(read_only_disk, tmp_path / "scenes", scene, prepared)
    code, line = run(capsys, *args)
    assert code == 2
    expected = {
        "prepare": f"error: {out}: cannot write there (read-only file system); choose another data.root (--out) or "
                   "fix the folder's permissions",
        "train": f"error: {out}: cannot write there (read-only file system); choose another train.out or fix the "
                 "folder's permissions",
        "predict": f"error: {out}: cannot write there (read-only file system); choose another --out or fix the "
                   "folder's permissions",
        "evaluate": f"error: {out}: output folder {read_only_disk} is not writable; choose another --out or fix its "
                    "permissions",
        "export": f"error: {out}: could not write the output (read-only file system); nothing was replaced: free "
                  "space, fix the permissions or choose another output location, then run again",
    }[command]
    assert line == expected
    assert hashes(read_only_disk, tmp_path / "scenes", scene, prepared) == before


def test_manifest_listing_deleted_chips(prepared, tmp_path, capsys):
    """Chips deleted after prepare: train names the first and the count; prepare run again writes them back."""
    root = tmp_path / "chips"
    shutil.copytree(prepared, root)
    manifest = pd.read_parquet(root / "manifest.parquet")
    gone = [root / manifest["image:image"].iloc[1], root / manifest["target:mask"].iloc[3]]
    for path in gone:
        path.unlink()
    before = hashes(root)
    code, line = run(capsys, "train", "demo", f"data.root={root}", f"train.out={tmp_path / 'runs'}", *TRAIN)
    assert (code, line) == (2, f"error: {root / 'manifest.parquet'}: 2 of the 16 chip files it lists are missing "
                               f"(first: {gone[0]}); run the same `eoseg prepare` again to write them, or restore the "
                               "files")
    assert hashes(root) == before and not (tmp_path / "runs").exists()
    code, _ = run(capsys, "prepare", "demo", "--scenes", prepared.parent / "scenes.csv", "--out", root, "--quiet",
                  *CHIPS)
    assert code == 0 and all(path.is_file() for path in gone)
    assert relative(hashes(root / "chips"), root) == relative(hashes(prepared / "chips"), prepared)  # the same chips


def relative(found: dict[str, str], root: Path) -> dict[str, str]:
    return {str(Path(path).relative_to(root)): digest for path, digest in found.items()}


# ------------------------------------------------------------------------------------------- checkpoints


def edited(checkpoint: Path, folder: Path, change: str) -> Path:
    """A copy of ``checkpoint`` with one part of its ``eoseg`` entry changed (as a hand edit or a mix-up would)."""
    payload = torch.load(checkpoint, weights_only=True)
    entry = payload["eoseg"]
    if change == "encoder":
        entry["config"]["model"]["encoder"] = "resnet34"
    elif change == "channels":
        entry["architecture"]["in_channels"] = 3
    elif change == "no stats":
        del entry["stats"]
    elif change == "stats of 3 bands":
        entry["stats"] = {**entry["stats"], "inputs": ["r", "g", "b"], "bands": {"image": ["r", "g", "b"]},
                          "channels": entry["stats"]["channels"] * 3}
    path = folder / f"{change.replace(' ', '-')}.ckpt"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("encoder", "the weights do not fit the model its config describes (Unet with encoder resnet34, 1 input "
                    "channel(s)): 80 tensor(s) missing, 0 of another shape, 0 unknown (e.g. "
                    "encoder.layer1.2.conv1.weight, encoder.layer1.2.bn1.weight)"),
        ("channels", "the weights take 1 input channel(s) (first conv encoder.conv1.weight) but the checkpoint's "
                     "architecture says 3"),
        ("no stats", "the checkpoint's 'eoseg' entry has no stats"),
        ("stats of 3 bands", "the band statistics (stats) describe 3 input channel(s) ['r', 'g', 'b'] and 3 channel "
                             "statistics but the weights take 1"),
    ],
)
def test_checkpoint_whose_entry_does_not_fit_its_weights(checkpoint, tmp_path, capsys, change, message):
    path = edited(checkpoint, tmp_path, change)
    scene = write_scene(tmp_path / "city.tif", np.full((1, 64, 64), 7, np.uint8))
    before = hashes(tmp_path)
    code, line = run(capsys, "predict", path, scene, "--out", tmp_path / "pred", "-q")
    assert (code, line) == (2, f"error: {path}: {message}; {EDITED}")
    assert hashes(tmp_path) == before and not (tmp_path / "pred").exists()


def unreadable(folder: Path, kind: str, suffix: str) -> Path:
    path = folder / f"{kind}{suffix}"
    if kind == "text":
        path.write_text("weights: see the shared drive\n")
    elif kind == "empty":
        path.write_bytes(b"")
    else:  # truncated: the first 4 KiB of a real checkpoint (a download that did not finish)
        path.write_bytes(write_checkpoint(folder / "whole.ckpt").read_bytes()[:4096])
    return path


REASONS = {
    "text": "it is a text file: 'weights: see the shared drive'...",
    "empty": "the file is empty: 0 bytes",
    "truncated": "the file is damaged or incomplete: 4096 bytes, a copy or download that did not finish?",
}


@pytest.mark.parametrize("kind", ["text", "empty", "truncated"])
def test_unreadable_checkpoint_says_why(tmp_path, capsys, kind):
    """Used to print "(101)", "()" or "([Errno 22] Invalid argument)"."""
    path = unreadable(tmp_path, kind, ".ckpt")
    scene = write_scene(tmp_path / "city.tif", np.full((1, 64, 64), 7, np.uint8))
    before = hashes(tmp_path)
    code, line = run(capsys, "predict", path, scene, "--out", tmp_path / "pred", "-q")
    assert (code, line) == (2, f"error: {path}: not a PyTorch checkpoint ({REASONS[kind]}); give a .ckpt written by "
                               "`eoseg train`")
    assert hashes(tmp_path) == before


@pytest.mark.parametrize("kind", ["text", "empty"])
def test_encoder_weights_that_are_text_or_empty(prepared, tmp_path, capsys, kind):
    """Used to be ``KeyError: 101`` (text) or click's bare "Aborted." (0 bytes, an EOFError)."""
    path = unreadable(tmp_path, kind, ".pth")
    before = hashes(tmp_path, prepared)
    code, line = run(capsys, "train", "demo", f"data.root={prepared}", f"train.out={tmp_path / 'runs'}",
                     f"model.encoder_weights={path}", *TRAIN)
    assert (code, line) == (2, f"error: {path}: not a torch weights file ({REASONS[kind]}); save a plain state dict "
                               "(torch.save(model.state_dict(), path)) or a .safetensors file")
    assert hashes(tmp_path, prepared) == before
