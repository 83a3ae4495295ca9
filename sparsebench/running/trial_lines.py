"""A running trial's words in a terminal, with nothing heavier than the plugin registry: shared by
a sweep's live status (:mod:`sparsebench.running.progress`) and ``run --bundle``
(:mod:`sparsebench.running.standalone`, where MLflow and pandas may be absent)."""
from __future__ import annotations

from sparsebench.core import registry

POLL_S = 10.0  # seconds between two reads of the running trials' progress


def clock(seconds: float) -> str:
    """'42 s', '3:07', '1:02:03'."""
    if seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}" if minutes >= 60 else f"{minutes}:{s:02d}"


def profile_epochs(task: str, profile: str) -> float | None:
    """The epochs of a profile's training (None where its budget is in steps or unknown)."""
    try:
        return registry.TASKS.get(task)[0].profiles[profile].epochs
    except (KeyError, AttributeError, TypeError, LookupError):
        return None


def trial_line(task: str, method: str, sparsity: float, seed: int, epoch: int, epochs: float | None,
               metric: str, value: float | None, elapsed: float, typical: float | None = None) -> str:
    """One running trial: 'resnet20 rigl 90% s0 · epoch 3/17 · val accuracy 61.2 · 4:05 elapsed, ~18:32 left'.
    Before its first epoch ends, the time left is ``typical`` (the store's earlier trials of the same task,
    profile and method, in seconds) less the time elapsed, where there were such trials."""
    if epochs and 0 < epoch <= epochs:
        left = f", ~{clock(elapsed / epoch * (epochs - epoch))} left"
    elif epoch == 0 and typical:
        left = f", ~{clock(max(typical - elapsed, 0))} left (as earlier runs took)"
    else:
        left = ""  # no epoch done yet and no earlier run, or retraining beyond one training's budget
    total = f"/{epochs:g}" if epochs and epoch <= epochs else f" ({epochs:g} per training: retraining)" if epochs else ""
    seen = f" · val {metric} {value:.4g}" if value is not None and value == value else " · first epoch running"
    return (f"  {task} {method} {sparsity * 100:g}% seed {seed} · epoch {epoch}{total}{seen} · "
            f"{clock(elapsed)} elapsed{left}")
