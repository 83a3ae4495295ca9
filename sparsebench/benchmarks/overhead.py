"""Benchmark: harness overhead against a bare PyTorch loop (``make overhead``, part of ``make perf``).

For each task, in one process, rounds alternate two runs of the same steps on the same data:
a whole sparsebench trial (random 90 % mask held every step, validation each epoch, FLOP,
sparsity and connectivity counting, final validation and test, measured inference) and a bare
PyTorch loop (the task's model, batches, loss and optimizer; no masks, no schedule, no
validation; one test evaluation at the end, as a user's own script would do). Printed: the
median over rounds of the ratio of wall times and of CPU times of the process (the latter is
what the harness costs even when other processes share the cores), and the parts: the training
alone (the method's time less its validations, against the bare loop less its test evaluation),
the per-epoch validations, and the trial's report after training beside the bare test evaluation.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch import nn

from sparsebench.core import registry
from sparsebench.core.train import make_optimizer
from sparsebench.data import data_root
from sparsebench.running.trial import TrialSpec, make_task, run_trial

TASKS = {"lenet300-mnist": 5, "resnet20-cifar10jpeg": 3, "transformer-shakespeare": 1}  # task -> default rounds


def bare_loop(task, train, test, steps: int, seed: int) -> float:
    """The reference: the same model, optimizer, batches and steps, then one test evaluation (its
    seconds returned)."""
    recipe = task.recipe
    torch.manual_seed(seed)
    model = task.model()
    opt = make_optimizer(recipe, model.parameters())  # the recipe's optimizer, built the same way
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if recipe.autocast else contextlib.nullcontext
    g = torch.Generator().manual_seed(seed)
    done = 0
    while done < steps:
        model.train()
        for batch in train.batches(recipe.batch_size, shuffle=True, generator=g):
            if done == steps:
                break
            with autocast():
                loss = task.loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            opt.step()
            done += 1
    model.eval()
    began = time.perf_counter()
    task.evaluate(model, test)
    return time.perf_counter() - began


def timed(run) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def overhead(task_name: str, rounds: int) -> dict:
    spec = TrialSpec(task_name, "random", 0.9, seed=0, profile="quick")
    task = make_task(spec.task, spec.profile)
    splits = task.load(data_root())  # loaded and cached outside the timings
    train = splits.train.subset(task.recipe.train_subset) if hasattr(splits.train, "subset") else splits.train
    harness, bare, parts = [], [], []
    for i in range(rounds):
        result, tested = {}, []
        harness.append(timed(lambda: result.update(run_trial(spec, data_root()))))
        steps = int(result["metrics"]["cost/train_steps"])
        bare.append(timed(lambda: tested.append(bare_loop(task, train, splits.test, steps, seed=i))))
        m = result["metrics"]
        # the training itself: the method less its validations, against the bare loop less its test
        parts.append(((m["time/method_seconds"] - m["time/validation_seconds"]) / (bare[-1][0] - tested[0]),
                      m["time/validation_seconds"], m["time/report_seconds"], tested[0]))
        print(f"{task_name} round {i + 1}: sparsebench trial {harness[-1][0]:.2f} s (CPU {harness[-1][1]:.2f} s; "
              f"validations {parts[-1][1]:.2f} s, report {parts[-1][2]:.2f} s), bare loop {bare[-1][0]:.2f} s "
              f"(CPU {bare[-1][1]:.2f} s; test {tested[0]:.2f} s), {steps} steps", flush=True)
    median = {k: statistics.median(t[j] for t in runs) for j, what in enumerate(("wall", "cpu"))
              for k, runs in ((f"trial_{what}", harness), (f"bare_{what}", bare))}
    median |= {k: statistics.median(p[j] for p in parts)
               for j, k in enumerate(("training_ratio", "validation_s", "report_s", "test_s"))}
    # each round's two runs are next to each other in time: their ratio is spared the machine's drift
    return {**median, **{f"{what}_ratio": statistics.median(h[j] / b[j] for h, b in zip(harness, bare))
                         for j, what in enumerate(("wall", "cpu"))}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", nargs="+", default=["lenet300-mnist"], help=f"tasks (any of {', '.join(TASKS)})")
    parser.add_argument("--rounds", type=int, help="rounds per task (default: 5 LeNet, 3 ResNet-20, 1 transformer)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    registry.discover()
    for name in args.task:
        r = overhead(name, args.rounds or TASKS.get(name, 3))
        print(f"{name}: sparsebench trial / bare PyTorch loop: wall {r['wall_ratio']:.3f}, CPU {r['cpu_ratio']:.3f} "
              f"(median of rounds; median times {r['trial_wall']:.2f} s / {r['bare_wall']:.2f} s); the training "
              f"alone {r['training_ratio']:.3f}; per-epoch validations {r['validation_s']:.2f} s; the report (final "
              f"evaluations, tracing, measured inference) {r['report_s']:.2f} s beside the bare test {r['test_s']:.2f} s",
              flush=True)


if __name__ == "__main__":
    main()
