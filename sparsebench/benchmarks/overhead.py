"""Benchmark: harness overhead against a bare PyTorch loop (``make overhead``).

Trains LeNet-300-100 on MNIST for the same steps, on the same data, twice per round: through a
full sparsebench trial (random 90 % mask, masks held every step, epoch validation, FLOP and
sparsity counting, final test) and as a bare PyTorch loop with no masks. Rounds alternate the
two in one process; the ratio of median wall times is printed.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from sparsebench.core import registry
from sparsebench.data import data_root
from sparsebench.core.train import make_optimizer
from sparsebench.running.trial import TrialSpec, make_task, run_trial


def bare_loop(task, steps: int, seed: int) -> None:
    """The reference: the same model, optimizer, batches and steps, no harness."""
    recipe = task.recipe
    train = task.load(data_root()).train
    torch.manual_seed(seed)
    model = task.model()
    opt = make_optimizer(recipe, model.parameters())  # the recipe's optimizer, built the same way
    g = torch.Generator().manual_seed(seed)
    done = 0
    while done < steps:
        order = torch.randperm(len(train.targets), generator=g)
        for start in range(0, len(order), recipe.batch_size):
            if done == steps:
                break
            idx = order[start:start + recipe.batch_size]
            loss = F.cross_entropy(model(train.inputs[idx]), train.targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    registry.discover()
    spec = TrialSpec("lenet300-mnist", "random", 0.9, seed=0, profile="quick")
    task = make_task(spec.task, spec.profile)
    task.load(data_root())  # load and cache the data outside the timings
    harness, bare = [], []
    for i in range(args.rounds):
        start = time.perf_counter()
        result = run_trial(spec, data_root())
        harness.append(time.perf_counter() - start)
        start = time.perf_counter()
        bare_loop(task, int(result["metrics"]["cost/train_steps"]), seed=i)
        bare.append(time.perf_counter() - start)
        print(f"round {i + 1}: sparsebench trial {harness[-1]:.2f} s, bare loop {bare[-1]:.2f} s "
              f"({int(result['metrics']['cost/train_steps'])} steps)", flush=True)
    ratio = statistics.median(harness) / statistics.median(bare)
    print(f"median: sparsebench trial {statistics.median(harness):.2f} s, bare PyTorch loop "
          f"{statistics.median(bare):.2f} s, ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
