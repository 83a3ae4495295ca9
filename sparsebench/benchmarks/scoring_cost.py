"""What pruning at initialization costs: each method's scoring next to a dense training epoch.

A benchmark, not a test: ``python -m sparsebench.benchmarks.scoring_cost`` builds ResNet-20 and VGG-16
(the CIFAR-10 tasks' own models) and, in one process, with one torch thread by default:

1. times a few dense training steps at the recipe's batch (128, SGD with momentum, the task's
   loss) after one warm-up step, and extrapolates to one epoch of 45,000 images (the CIFAR-10
   training split less its 5,000 validation images);
2. times each method's ``run`` up to training (``ctx.train`` is a no-op here): scoring, ranking,
   masks, restoring the initial weights — with the harness's own ``Context`` over random
   CIFAR-shaped batches (the cost of a score does not depend on the pixel values). Iterative
   methods (FORCE, Iterative SNIP: 60 steps; SynFlow: 100 rounds) are timed over ``--rounds``
   rounds and extrapolated linearly to their default count (every round costs the same: one
   score and one top-k).

Prints one table per model; the ratio column is scoring time / dense epoch time.
"""
from __future__ import annotations

import argparse
import time

import torch

from sparsebench.core import registry
from sparsebench.core.task import TensorSplit
from sparsebench.core.train import make_optimizer
from sparsebench.running.trial import make_context, make_method, make_task

EPOCH_IMAGES = 45_000
METHODS = ["magnitude-init", "snip", "grasp", "iter-snip", "force", "synflow"]
ROUNDS = {"iter-snip": "steps", "force": "steps", "synflow": "rounds"}  # hparam with the round count


def random_split(n: int, generator: torch.Generator) -> TensorSplit:
    return TensorSplit(torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator))


def dense_epoch_seconds(task, split: TensorSplit, steps: int) -> tuple[float, float]:
    """(seconds per step, extrapolated seconds per epoch) of dense training at the recipe's batch."""
    torch.manual_seed(0)
    model = task.model()
    model.train()
    opt = make_optimizer(task.recipe, model.parameters())
    batches = split.batches(task.recipe.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))

    def step():
        loss = task.loss(model, next(batches))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - start) / steps
    return per_step, per_step * EPOCH_IMAGES / task.recipe.batch_size


def scoring_seconds(task, split: TensorSplit, name: str, sparsity: float, rounds: int) -> tuple[float, int, int]:
    """(extrapolated seconds, rounds timed, default rounds) of ``name``'s run up to training."""
    key = ROUNDS.get(name)
    default_rounds = getattr(make_method(name), key) if key else 1
    timed = min(rounds, default_rounds) if key else 1
    method = make_method(name, {key: timed} if key else {})
    torch.manual_seed(0)
    ctx = make_context(task, split, split, sparsity, torch.Generator().manual_seed(0))
    ctx.train = lambda *a, **k: None
    start = time.perf_counter()
    method.run(ctx)
    seconds = time.perf_counter() - start
    n = sum(m.numel() for m in ctx.masks.masks.values())
    assert abs(ctx.masks.density() - (1 - sparsity)) <= 1 / n, "the target sparsity was not reached"
    return seconds * default_rounds / timed, timed, default_rounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["resnet20-cifar10", "vgg16-cifar10"])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="dense training steps timed (after one warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds timed for iterative methods")
    parser.add_argument("--sparsity", type=float, default=0.9)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    registry.discover()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), sparsity {args.sparsity}")
    for task_name in args.tasks:
        task = make_task(task_name, "full")
        split = random_split(max(4 * task.recipe.batch_size, 512), torch.Generator().manual_seed(0))
        per_step, epoch = dense_epoch_seconds(task, split, args.steps)
        params = sum(p.numel() for p in task.model().parameters())
        print(f"\n{task_name}: {params / 1e6:.2f}M parameters; dense step (batch {task.recipe.batch_size}) "
              f"{per_step:.3f} s, epoch of {EPOCH_IMAGES} images ≈ {epoch:.1f} s "
              f"(extrapolated from {args.steps} steps)")
        print(f"{'method':16s} {'rounds timed':>13s} {'scoring s':>10s} {'x epoch':>8s}")
        for name in args.methods:
            seconds, timed, default = scoring_seconds(task, split, name, args.sparsity, args.rounds)
            rounds = f"{timed}/{default}" if default > 1 else "1"
            print(f"{name:16s} {rounds:>13s} {seconds:10.2f} {seconds / epoch:8.3f}", flush=True)


if __name__ == "__main__":
    main()
