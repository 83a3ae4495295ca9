"""A trial's words in a terminal, with nothing heavier than the plugin registry: its line while it
runs, its words when it ends, and the table of cells at the end; shared by a sweep
(:mod:`sparsebench.running.progress`) and ``run --bundle`` (:mod:`sparsebench.running.standalone`,
where MLflow and pandas may be absent)."""
from __future__ import annotations

import statistics

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


def signed(difference: float) -> str:
    """A difference in the metric's unit: '+0.55', '-1.50'; four digits past a thousand ('+1.454e+05')."""
    return f"{difference:+.2f}" if abs(difference) < 1000 else f"{difference:+.4g}"


def finished_words(result: dict, dense: float | None = None, is_dense: bool = False) -> str:
    """A finished trial's words: its status, test metric, wall time and Δ vs its dense reference
    (``dense``: the mean test metric of its task's dense runs under its profile). ``result`` holds
    ``status``, ``reason`` and the trial's metrics (``final/test_…``, ``final/val_…``, ``time/trial_seconds``)."""
    tests = {k[len("final/test_"):]: v for k, v in result.items() if k.startswith("final/test_")}
    vals = [f"val {k[len('final/val_'):]} {v:.4g}" for k, v in result.items() if k.startswith("final/val_")]
    words = [str(result.get("status", "?"))]
    if not tests and vals:  # a search's trial: validation only
        words.append(vals[0])
    if tests:
        metric, value = next(iter(tests.items()))
        words.append(f"test {metric} {value:.4g}")
        if dense is not None and not is_dense:
            words.append(f"Δ vs dense {signed(value - dense)}")
        elif not is_dense:
            words.append("no dense reference yet")
    if (seconds := result.get("time/trial_seconds")) is not None:
        words.append(f"in {clock(seconds)}")
    if result.get("reason"):
        words.append(str(result["reason"]))
    return ", ".join(words)


def results_text(rows: list[tuple]) -> str:
    """A compact table of cells, one line each, from ``rows`` of (task, profile, track, method, sparsity,
    metric, value) — one row per run: n seeds and the test metric's mean ± std over them."""
    cells: dict[tuple, list[float]] = {}
    for *key, value in rows:
        if value == value:  # a run without its metric (NaN) is left out
            cells.setdefault(tuple(key), []).append(value)
    if not cells:
        return ""
    lines = [("task", "profile", "track", "method", "sparsity", "n", "test metric (mean ± std)")]
    for (task, profile, track, method, sparsity, metric), values in sorted(cells.items()):
        spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        lines.append((task, profile, track, method, f"{sparsity * 100:g}%", str(len(values)),
                      f"{metric} {statistics.fmean(values):.2f}{spread}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["| " + " | ".join(v.ljust(w) for v, w in zip(line, widths)) + " |" for line in lines]
    text.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(text)
