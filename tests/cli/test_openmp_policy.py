"""eoseg predict makes torch's OpenMP threads sleep while they wait (eoseg.openmp): set before torch loads,
kept when the user set a policy, and not claimed once torch is loaded (too late for libgomp)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import os, sys
from eoseg.cli import main
try:
    main(["predict", "empty.ckpt", "scene.tif", "--out", "out"])
except SystemExit:
    pass
print(os.environ.get("OMP_WAIT_POLICY"), "torch" in sys.modules)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_predict_sets_the_wait_policy_before_torch_loads(tmp_path, given, expected) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    for name in ("empty.ckpt", "scene.tif"):  # present, so that predict loads torch to read the checkpoint
        (tmp_path / name).write_bytes(b"")
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                            check=True)
    assert result.stdout.split()[-2:] == [expected, "True"]  # torch loaded after the policy was set
    assert "empty.ckpt: " in result.stderr + result.stdout  # the command ran (and failed on the checkpoint)
    assert not (tmp_path / "out").exists()


def test_sleep_while_waiting_does_nothing_once_torch_is_loaded(monkeypatch) -> None:
    import torch  # noqa: F401  (loaded: libgomp has read its environment)

    from eoseg.openmp import sleep_while_waiting

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert sleep_while_waiting() is False
    assert "OMP_WAIT_POLICY" not in os.environ
