"""Why a pruned model is (not) faster: measured speedup against the FLOPs ratio, by structure.

A benchmark, not a test: ``python -m sparsebench.benchmarks.speedup`` builds ResNet-20 (CNN) and
the SST-2 transformer (the tasks' own models, at initialization: the time of a forward pass does
not depend on the values of its kept weights) and prunes each at the same targets three ways —
unstructured (per-layer magnitude), structured (per-layer L1 filters / neurons, as ``l1-filter``)
and 2:4 (``nm-magnitude``'s pattern) — then times every model through the harness's own
measurement (:mod:`sparsebench.core.inference`, one thread, the fastest of the dense, CSR and
compacted forms, side by side with the dense form in this one process) on random batches of the
tasks' shapes. Prints, per model and pruning, the FLOPs ratio (sparse / dense), the measured
speedup at batch 1 and at the evaluation batch, the form that was fastest and its stored size.
"""
from __future__ import annotations

import torch

from sparsebench.core import registry
from sparsebench.core.flops import count_forward_flops
from sparsebench.core.inference import measure
from sparsebench.core.masks import Masks
from sparsebench.library import structures
from sparsebench.running.trial import MAX_TIMED_BATCH, make_task

TARGETS = (0.5, 0.75, 0.9)


def batches_of(task_name: str, n: int, generator: torch.Generator):
    if task_name.startswith("resnet20"):
        return torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator)
    return torch.randint(1, 1000, (n, 32), generator=generator), torch.randint(0, 2, (n,), generator=generator)


def prune(model, prunable, how: str, target: float, example, loss) -> Masks:
    masks = Masks(model, prunable)
    scores = {n: p.detach().abs() for n, p in masks.params.items()}
    if how == "unstructured":
        masks.prune(scores, target, rule="uniform")
    elif how == "structured":
        new = {n: m.clone() for n, m in masks.masks.items()}
        for group in structures.find_groups(model, prunable, example, loss):
            if not group.shared:
                new.update(group.masks(structures.remove_lowest(structures.unit_scores(group, scores), target), new))
        masks.set(new)
    else:
        masks.set({n: structures.nm_mask(s, 2, 4) for n, s in scores.items()})
    return masks


def main() -> None:
    registry.discover()
    generator = torch.Generator().manual_seed(0)
    print("| model | pruning | target | weight sparsity | inference FLOPs | speedup b1 | speedup bN | form | bytes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task_name in ("resnet20-cifar10", "transformer-sst2"):
        task = make_task(task_name, "quick")
        n = min(task.recipe.eval_batch_size, MAX_TIMED_BATCH)
        batches = {"b1": batches_of(task_name, 1, generator), "bN": batches_of(task_name, n, generator)}
        for how, targets in (("unstructured", TARGETS), ("structured", TARGETS[:2]), ("2:4", (0.5,))):
            for target in targets:
                torch.manual_seed(0)
                model = task.model().eval()
                prunable = task.prunable(model)
                masks = prune(model, prunable, how, target, batches["bN"], task.loss)
                flops = count_forward_flops(model, prunable, lambda: task.loss(model, batches["bN"]), n)
                densities = {k: float(m.mean()) for k, m in masks.masks.items()}
                forms = {}
                groups = structures.find_groups(model, prunable, batches["bN"], task.loss)
                if structures.group_sparsity(groups, masks.masks) > 0:
                    try:
                        forms["compact"] = structures.compact(model, groups, batches["bN"], task.loss)
                    except Exception:  # attention reshapes by its width: not compacted
                        pass
                metrics, form = measure(model, masks, task.loss, batches, forms)
                sparsity = 1 - sum(m.sum() for m in masks.masks.values()) / sum(m.numel() for m in masks.masks.values())
                print(f"| {task_name} | {how} | {target:.0%} | {float(sparsity):.1%} | "
                      f"{flops.per_example(densities) / flops.per_example():.3f}× | "
                      f"{metrics['inference/speedup_measured_b1']:.2f}× | {metrics['inference/speedup_measured']:.2f}× | "
                      f"{form} | {metrics['inference/bytes'] / metrics['inference/bytes_dense']:.3f}× |", flush=True)


if __name__ == "__main__":
    main()
