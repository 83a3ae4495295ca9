"""A trial's guard in its worker: its wall-clock budget, and the life of the sweep that owns it.

A plugin that hangs in the trial's own thread cannot be stopped from inside that thread, so the
guard, a thread beside it, ends the trial: past the budget it records the trial as failed (kind
``timeout``, a result: not run again unless ``--retry-failed``) and ends the worker process
(``os._exit``), which Ray Tune then reports as a worker error that the driver leaves as recorded
(:func:`sparsebench.running.sweep._record_crash`). A worker whose sweep's driver died on this host
ends too, without a record, so that the next sweep, which takes the dead driver's claims over at
once, is the only one that runs the trial.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

EXIT_TIMEOUT = 124  # the worker's exit status past its budget (as ``timeout(1)``)
EXIT_ORPHAN = 125   # ... when the sweep that owns it died


class Guard:
    """While the block runs: past ``budget_s`` seconds, call ``on_timeout`` (which records the
    trial's end) and end the process; when ``owner_dead()`` turns true, end the process. The
    block's end and the guard's action exclude each other: whichever comes first holds."""

    def __init__(self, budget_s: float, on_timeout: Callable[[float], None],
                 owner_dead: Callable[[], bool] = lambda: False, every: float = 1.0):
        self.budget_s, self.on_timeout, self.owner_dead, self.every = budget_s, on_timeout, owner_dead, every
        self.lock, self.stop, self.over = threading.Lock(), threading.Event(), False

    def __enter__(self) -> "Guard":
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._watch, name="sparsebench-guard", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self.lock:  # a guard that is ending the process holds the lock until the process ends
            self.over = True
        self.stop.set()
        self.thread.join()

    def _watch(self) -> None:
        while not self.stop.wait(min(self.every, self.budget_s)):
            elapsed = time.monotonic() - self.started
            if elapsed >= self.budget_s:
                self._end(lambda: self.on_timeout(elapsed), EXIT_TIMEOUT)
            try:
                dead = self.owner_dead()
            except Exception:  # a failed look is no news of death
                dead = False
            if dead:
                self._end(lambda: None, EXIT_ORPHAN)

    def _end(self, record: Callable[[], None], status: int) -> None:
        with self.lock:
            if self.over:
                return
            try:
                record()
            finally:
                os._exit(status)


def timeout_result(budget_s: float, elapsed: float) -> dict:
    """The result recorded for a trial ended past its budget."""
    return {"status": "failed", "failure": "timeout", "metrics": {"time/trial_seconds": elapsed},
            "reason": f"timeout: the trial ran past its budget of {budget_s:g} s and was ended (a hung "
                      "plugin, or a budget too small: see the task profile's budget_s and --trial-timeout)"}
