"""A stop (SIGINT / SIGTERM) asked for inside the predictor's loop takes effect between batches, never in the
middle of one: a KeyboardInterrupt raised at an arbitrary point could leave a lock of the reader's or
writer's threads held, and the cleanup that follows would wait for it forever."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from reliability_helpers import hashes, write_scene

from eoseg import stopping
from eoseg.cli.app import main
from eoseg.cli.runtime import INTERRUPTED, STOPPING, Interrupted
from eoseg.inference.engine import EnsembleRunner


@pytest.fixture(autouse=True)
def _no_request_left():
    """Each test starts and leaves without a recorded stop request (later tests predict in this process)."""
    stopping.reset()
    yield
    stopping.reset()


def test_a_signal_inside_a_checking_loop_waits_for_its_next_stop_point():
    interrupted = Interrupted()
    with pytest.raises(KeyboardInterrupt), stopping.safe_points():
        interrupted._handle(signal.SIGTERM, None)  # returns: the loop raises it itself
        reached = True
        stopping.stop_point()
        reached = False
    assert reached and interrupted.exit_code == 143
    # a second signal (the user insists) raises at once, even inside such a loop
    with pytest.raises(KeyboardInterrupt), stopping.safe_points():
        interrupted._handle(signal.SIGINT, None)
    # outside any such loop the first signal raises at once, as before
    stopping.reset()
    with pytest.raises(KeyboardInterrupt):
        Interrupted()._handle(signal.SIGINT, None)


def test_a_stop_asked_for_when_a_loop_ends_is_raised_on_leaving_it():
    with pytest.raises(KeyboardInterrupt), stopping.safe_points():
        assert stopping.request_stop()  # deferred: a loop is running
    assert not stopping.request_stop()  # none is running now: the caller must raise
    stopping.stop_point()  # and nothing was recorded that a later loop would raise


def test_sigterm_during_a_batch_finishes_that_batch_then_stops_predict(tmp_path, checkpoint, capfd, monkeypatch):
    scene = write_scene(tmp_path / "city.tif", np.full((1, 1024, 1024), 7, np.uint8))
    out = tmp_path / "pred"
    out.mkdir()
    (out / "earlier.mask.tif").write_bytes(b"finished output of an earlier run")
    before = hashes(out)
    calls, finished = [], []
    run = EnsembleRunner.run

    def run_and_signal(self, inputs):
        calls.append(len(calls))
        if len(calls) == 2:
            signal.raise_signal(signal.SIGTERM)  # its Python handler runs here, inside the batch
        result = run(self, inputs)
        finished.append(len(calls))
        return result

    monkeypatch.setattr(EnsembleRunner, "run", run_and_signal)
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(checkpoint), str(scene), "--out", str(out), "-q", "predict.batch_size=1"])
    assert exit_info.value.code == 143
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-2:] == [STOPPING, INTERRUPTED]  # told at once that it stops after the batch, then that it stopped
    assert finished == [1, 2]  # the batch the signal came in was finished, the next one never started
    assert sorted(p.name for p in out.iterdir()) == ["earlier.mask.tif"] and hashes(out) == before
