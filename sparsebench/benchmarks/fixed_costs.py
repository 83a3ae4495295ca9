"""Benchmark: what a command, a sweep and a trial cost besides training (part of ``make perf``).

Measured in one run, on this machine:

- command start: ``sparsebench --help``, ``sparsebench list`` (catalog in the cache) and an
  argument error, each a fresh process (median of 3), beside ``python -c "import torch"``;
- plugin discovery (importing every plugin, in a fresh process, beyond importing torch);
- MLflow setup: creating and migrating a fresh SQLite store, and opening an existing one;
- Ray: starting a local instance and shutting it down;
- a sweep of N short trials through Ray Tune with 1 and with 2 workers (``--trials``): the
  per-trial fixed cost outside the trial function (scheduling, the MLflow run, the result),
  the gap between one trial and the next on a worker; the parallel efficiency, throughput with 2
  workers over twice that with 1 (trials of one thread each), of the trials (first start to last
  end) and of the whole sweep, beside that of the same trials in two plain processes against one
  (what the machine allows); and whether Tune started the trials in the sweep's order (the order
  :func:`sparsebench.running.sweep.longest_first` chose);
- with ``--shared``, trials that share trainings (the default suite's lottery block) started apart
  (:func:`sparsebench.running.sweep.apart_by_training`) and in the suite's order: trainings run,
  distinct among them, and wall time.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable


def wall(argv: list[str], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command_start() -> dict[str, float]:
    cli = [PYTHON, "-m", "sparsebench.cli"]
    subprocess.run(cli + ["list"], capture_output=True)  # the catalog built once, outside the timings
    return {"python -c 'import torch'": wall([PYTHON, "-c", "import torch"]),
            "sparsebench --help": wall(cli + ["--help"]),
            "sparsebench list": wall(cli + ["list"]),
            "sparsebench run (unknown task)": wall(cli + ["run", "--task", "nope", "--method", "rigl",
                                                          "--sparsity", "0.9"]),
            "plugin discovery (beyond torch)":
                wall([PYTHON, "-c", "import torch; from sparsebench.core import registry; registry.discover()"])
                - wall([PYTHON, "-c", "import torch"])}


def store_setup(folder: Path) -> dict[str, float]:
    code = "import sys, time; from sparsebench.running import tracking; t = time.perf_counter(); " \
           "tracking.open_store(sys.argv[1]); print(time.perf_counter() - t)"
    uri = f"sqlite:///{folder / 'setup.db'}"
    fresh = float(subprocess.run([PYTHON, "-c", code, uri], capture_output=True, text=True).stdout)
    again = float(subprocess.run([PYTHON, "-c", code, uri], capture_output=True, text=True).stdout)
    return {"MLflow store: create and migrate a fresh SQLite file": fresh, "MLflow store: open an existing one": again}


def ray_start() -> dict[str, float]:
    import ray

    start = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    up = time.perf_counter() - start
    start = time.perf_counter()
    ray.shutdown()
    return {"Ray: start a local instance": up, "Ray: shut it down": time.perf_counter() - start}


def sweep_specs(trials: int) -> list:
    """``trials`` short trials: LeNet-300-100 quick, random pruning at as many sparsities."""
    from sparsebench.core import registry
    from sparsebench.running.sweep import plan

    registry.discover()
    return plan(["lenet300-mnist"], ["random"], [round(0.5 + 0.4 * i / max(1, trials - 1), 3)
                                                 for i in range(trials)], [0], "quick")


def trials_in_a_row(specs: list[dict]) -> tuple[float, float]:
    """Run ``specs`` one after another in this process (one thread); their first start and last end."""
    import torch

    from sparsebench.core import registry
    from sparsebench.running.trial import TrialSpec, run_trial

    torch.set_num_threads(1)
    registry.discover()
    start = time.time()
    for spec in specs:
        run_trial(TrialSpec.from_json(spec))
    return start, time.time()


def plain_span(trials: int, workers: int) -> float:
    """The same trials as :func:`sweep` in ``workers`` plain processes (no Ray, no MLflow), split
    evenly: from the first trial's start to the last one's end. Two such processes against one
    measure what the machine allows, as opposed to what the harness costs."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    specs = [s.to_json() for s in sweep_specs(trials)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        spans = list(pool.map(trials_in_a_row, [specs[i::workers] for i in range(workers)]))
    return max(end for _, end in spans) - min(start for start, _ in spans)


def sweep(folder: Path, workers: int, trials: int) -> dict[str, float]:
    """A sweep of ``trials`` short trials on ``workers`` CPUs: its wall time, the trials' seconds,
    the median gap between one trial's end and the next one's start on a worker (1 worker), the
    span from the first trial's start to the last one's end, and whether trials started in the
    sweep's order."""
    from sparsebench.running import tracking

    specs = sweep_specs(trials)
    uri = f"sqlite:///{folder / f'sweep-{workers}.db'}"
    elapsed = timed_sweep(specs, uri, workers, f"fixed-costs-{workers}", checkpoints=False)
    runs = tracking.runs_frame(uri).sort_values("start_time")
    seconds = runs["metrics.time/trial_seconds"]
    starts, ends = [t.timestamp() for t in runs["start_time"]], [t.timestamp() for t in runs["end_time"]]
    # one worker runs them one after another: from a trial's start to the next's, less its trial function
    between = [b - a - t for a, b, t in zip(starts, starts[1:], seconds)]
    return {"wall": elapsed, "trial_seconds": float(seconds.sum()), "span": max(ends) - min(starts),
            "gap": statistics.median(between or [float("nan")]),
            "in_order": in_order(list(runs["tags.sb.sparsity"]), [str(s.sparsity) for s in specs], workers)}


def timed_sweep(specs: list, uri: str, workers: int, name: str, **options) -> float:
    """Seconds of ``run_sweep`` on a new local Ray of ``workers`` CPUs (started and stopped outside the timing)."""
    import ray

    from sparsebench.running.sweep import run_sweep

    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        start = time.perf_counter()
        run_sweep(specs, uri=uri, name=name, **options)
        return time.perf_counter() - start
    finally:
        ray.shutdown()


def in_order(started: list, planned: list, workers: int) -> bool:
    """Whether trials started in the planned order; the first ``workers`` start at once, in any order."""
    return sorted(started[:workers]) == sorted(planned[:workers]) and started[workers:] == planned[workers:]


def shared_trainings(folder: Path, apart: bool) -> dict[str, float]:
    """The default suite's lottery block (LeNet-300-100 quick, 5 targets x 3 seeds, whose trials
    share their levels) on 2 workers through the checkpoint store, its trials started apart by
    training group or in the suite's order: wall time, trainings run and reused, and the distinct
    trainings among them (files of the cache)."""
    import os

    from sparsebench.core import registry
    from sparsebench.running import tracking
    from sparsebench.running.sweep import plan

    registry.discover()
    specs = plan(["lenet300-mnist"], ["lottery"], [0.5, 0.8, 0.9, 0.95, 0.98], [0, 1, 2], "quick")
    name = "apart" if apart else "in-order"
    uri, cache = f"sqlite:///{folder / f'shared-{name}.db'}", folder / f"cache-{name}"
    before = os.environ.get("SPARSEBENCH_CACHE")
    os.environ["SPARSEBENCH_CACHE"] = str(cache)  # before Ray starts: its workers inherit it
    try:
        elapsed = timed_sweep(specs, uri, 2, f"shared-{name}", apart=apart)
    finally:  # the user's cache setting as it was
        os.environ.pop("SPARSEBENCH_CACHE") if before is None else os.environ.update(SPARSEBENCH_CACHE=before)
    runs = tracking.runs_frame(uri)
    return {"wall": elapsed, "run": runs["metrics.checkpoints/misses"].sum(),
            "reused": runs["metrics.checkpoints/hits"].sum(),
            "distinct": len(list((cache / "checkpoints").glob("*.pt")))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=8, help="trials of each sweep (LeNet-300-100, quick)")
    parser.add_argument("--shared", action="store_true",
                        help="also the lottery block with its trials started apart and in order (about 6 minutes)")
    args = parser.parse_args(argv)
    n = args.trials
    with tempfile.TemporaryDirectory() as tmp:
        figures = {**command_start(), **store_setup(Path(tmp)), **ray_start()}
        for what, seconds in figures.items():
            print(f"{what:55s} {seconds:6.2f} s", flush=True)
        one, two = sweep(Path(tmp), 1, n), sweep(Path(tmp), 2, n)
    print(f"{'sweep of %d trials, 1 worker / 2 workers (wall)' % n:55s} {one['wall']:6.2f} s / {two['wall']:.2f} s")
    print(f"{'per-trial fixed cost outside the trial function':55s} {one['gap']:6.2f} s "
          f"(median, 1 worker; trials {one['trial_seconds'] / n:.2f} s each)")
    print(f"{'the sweep besides its trials, 1 worker (setup, Tune, end)':55s} {one['wall'] - one['span']:6.2f} s")
    print(f"{'parallel efficiency of the trials (span 1 worker / 2 x span 2)':55s} {one['span'] / (2 * two['span']):6.2f}")
    print(f"{'parallel efficiency of the whole sweep (wall)':55s} {one['wall'] / (2 * two['wall']):6.2f}")
    plain = plain_span(n, 1) / (2 * plain_span(n, 2))
    print(f"{'the same trials in plain processes, 2 against 1 (machine)':55s} {plain:6.2f}")
    print(f"{'trials started in the sweep order (1 worker / 2 workers)':55s} {one['in_order']} / {two['in_order']}")
    if args.shared:
        with tempfile.TemporaryDirectory() as tmp:
            for apart in (False, True):
                r = shared_trainings(Path(tmp), apart)
                print(f"{'lottery block, 2 workers, ' + ('started apart' if apart else 'in the suite order'):55s} "
                      f"{r['wall']:6.2f} s: {r['run']:.0f} trainings run ({r['distinct']} distinct), "
                      f"{r['reused']:.0f} reused", flush=True)


if __name__ == "__main__":
    main()
