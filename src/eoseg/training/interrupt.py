"""Stopping a training run on SIGINT / SIGTERM at a clean point, with a ``last.ckpt`` that resumes exactly.

The first signal only asks to stop (and says so on stderr at once): the current batch finishes (or, at an
epoch's last batch, the epoch with its validation), ``checkpoints/last.ckpt`` is written there — weights,
optimiser, schedule, loop progress, random states and the sampler's position
(:class:`~eoseg.data.sampler.ResumableLoader`) — and training stops with :class:`TrainingInterrupted`.
``eoseg train --resume`` then continues bit-identically to a run that was never interrupted (with
``train.deterministic=true``). A second signal interrupts at once and writes nothing, so ``last.ckpt`` stays the
last clean point.

SIGTERM (``timeout``, a scheduler) is handled exactly like SIGINT. Lightning (2.6) would otherwise put its own
SIGTERM handler in front of eoseg's when ``fit`` starts (``_SignalConnector``), and its loops then end the run
with ``SIGTERMException`` — a ``SystemExit`` without a status, so the command exited 0 — at the next check it
meets: during validation, or after an epoch's last batch, with no ``last.ckpt`` written and nothing said.
:class:`StopOnSignal` therefore gives the trainer a signal connector that keeps Lightning's other handlers
(SLURM's requeue on SIGUSR1) but leaves SIGTERM to eoseg.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector

from eoseg.stopping import announce


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after writing a resumable ``last.ckpt`` (the message says where).

    ``signum`` is the signal that asked for the stop (SIGINT or SIGTERM)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class _Stop(Exception):
    """Raised inside the Lightning loop to end ``fit`` (Lightning re-raises exceptions other than Ctrl+C)."""


SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOPPING = ("stopping after the current batch (or validation) to write last.ckpt; a second Ctrl+C (or SIGTERM) "
            "stops at once without writing it")


class _SigtermLeftToEoseg(_SignalConnector):
    """Lightning's signal connector, except that SIGTERM keeps the handler it had before ``fit`` (eoseg's)."""

    def register_signal_handlers(self) -> None:
        ours = signal.getsignal(signal.SIGTERM)
        super().register_signal_handlers()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, ours)


class StopOnSignal(Callback):
    """Turns SIGINT / SIGTERM into a stop at the next clean point with ``last`` written (see module doc)."""

    def __init__(self, last: Path) -> None:
        self.last = Path(last)
        self.signum: int | None = None
        self._handling = False  # our handlers are installed (main thread, inside handling_signals)

    @contextmanager
    def handling_signals(self) -> Iterator[StopOnSignal]:
        """Install the handlers for the duration of ``fit`` (main thread only), restore the old ones after."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in SIGNALS}

        def handler(signum: int, frame: Any) -> None:
            if self.signum is not None:
                raise KeyboardInterrupt
            self.signum = signum
            announce(STOPPING)

        for s in SIGNALS:
            signal.signal(s, handler)
        self._handling = True
        try:
            yield self
        finally:
            self._handling = False
            for s, old in previous.items():
                signal.signal(s, old)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Before ``fit`` registers Lightning's signal handlers: keep SIGTERM ours (see the module doc)."""
        if self._handling and not isinstance(trainer._signal_connector, _SigtermLeftToEoseg):
            trainer._signal_connector = _SigtermLeftToEoseg(trainer)

    def _requested(self, trainer: L.Trainer) -> bool:
        asked = self.signum is not None or trainer.received_sigterm
        return bool(trainer.strategy.reduce_boolean_decision(asked, all=False))

    def _stop(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.last, weights_only=False)  # the full state: resumable (and no Lightning note)
        raise _Stop(f"epoch {trainer.current_epoch}, step {trainer.global_step}")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # the epoch's end (after validation) is the clean point: on_train_epoch_end
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # gradients of an unfinished accumulation would be lost
        if self._requested(trainer):
            self._stop(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._requested(trainer):
            self._stop(trainer)


@contextmanager
def stop_on_signal(stop: StopOnSignal) -> Iterator[None]:
    """Run ``fit`` inside: a requested stop comes out as :class:`TrainingInterrupted` naming ``last.ckpt``."""
    with stop.handling_signals():
        try:
            yield
        except _Stop as exc:
            raise TrainingInterrupted(
                f"training stopped at {exc}; {stop.last} is written: continue exactly with `eoseg train ... --resume`",
                stop.signum or signal.SIGTERM,
            ) from None
        except (KeyboardInterrupt, SystemExit):  # a second signal (Lightning turns it into sys.exit(1))
            if stop.signum is None:
                raise
            kept = (f"{stop.last} (the last clean point) is kept: continue with `eoseg train ... --resume`"
                    if stop.last.is_file() else "no checkpoint was written yet: train again")
            raise TrainingInterrupted(f"training interrupted at once by a second signal; {kept}", stop.signum) from None
