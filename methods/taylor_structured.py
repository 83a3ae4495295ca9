"""First-order Taylor importance of filters and neurons, pruned iteratively while fine-tuning.

Molchanov, Mallya, Tyree, Frosio & Kautz 2019, "Importance Estimation for Neural Network
Pruning" (CVPR); code: github.com/NVlabs/Taylor_pruning (``pruning_engine.py``). Algorithm
(their §3, Algorithm 1): from a trained network, fine-tune; every ``frequency`` minibatches rank
all units of the network together by their importance — the squared first-order Taylor estimate
of the loss change on removing the unit, (Σ_{s ∈ unit} g_s w_s)², averaged over those minibatches
— and remove the ``per_step`` least important; stop when the target fraction of units is gone,
and fine-tune on. The sum runs over every weight the unit removes (its rows and the next layer's
columns: :func:`sparsebench.library.structures.unit_scores` with ``members="all"``), the paper's
"Taylor FO on weights" group contribution; their best variant gates BatchNorm scales instead,
which exist in CNNs only. Units shared by several producers (residual streams) are left, as in
``l1-filter``.

Here: fine-tuning at the recipe's final learning rate, held constant, for a quarter of a
training (as ``l1-filter``; the paper fine-tunes with a small constant rate), units removed over
its first half; ``per_step`` is set so that the target is reached there (the paper removes a fixed
count, e.g. 100 neurons every 30 minibatches on ImageNet: counts no CPU task of this size has).
At least one unit of every group stays. ``sparsity`` is the fraction of all units removed.
"""
from dataclasses import dataclass

import torch

from sparsebench import Method, register_method
from sparsebench.library.structures import groups_of, unit_scores


@register_method("taylor-structured")
@dataclass
class TaylorStructured(Method):
    frequency: int = 10            # minibatches between pruning steps (their pruning frequency)
    retrain_fraction: float = 0.25  # fine-tuning after the dense training, a fraction of one training
    prune_fraction: float = 0.5    # of the fine-tuning, the part in which units are removed
    bounds = {"frequency": "[1, inf)", "retrain_fraction": "(0, 10]", "prune_fraction": "(0, 1]"}

    when = "after"
    criterion = "gradient"
    structure = "filters"
    exact_sparsity = False  # the target is a fraction of units; the weights' sparsity follows from it
    paper = "Molchanov et al. 2019, Importance Estimation for Neural Network Pruning (CVPR)"
    untuned = "the schedule is set by the budget: the target is reached in the first half of the fine-tuning"

    def run(self, ctx):
        ctx.train()
        groups = groups_of(ctx, shared=False)
        total = sum(g.units for g in groups)
        target = min(round(ctx.sparsity * total), total - len(groups))  # one unit of each group stays
        steps = max(1, round(self.retrain_fraction * ctx.total_steps))
        window = max(1, int(self.prune_fraction * steps))
        every = min(self.frequency, window)  # a short fine-tuning prunes more often
        per_step = -(-target // (window // every))
        removed = [torch.zeros(g.units, dtype=torch.bool) for g in groups]
        importance = [torch.zeros(g.units, dtype=torch.float64) for g in groups]
        params = ctx.masks.params

        def accumulate_and_prune(i):
            contributions = {n: p.grad * p.detach() for n, p in params.items() if p.grad is not None}
            for g, acc in zip(groups, importance):
                acc += unit_scores(g, contributions, members="all") ** 2
            left = target - sum(int(r.sum()) for r in removed)
            if (i + 1) % every or left <= 0:
                return
            ranked = sorted((float(acc[u]), k, u) for k, acc in enumerate(importance) for u in range(len(acc))
                            if not removed[k][u])
            quota = min(per_step, left)
            for _, k, u in ranked:
                if quota == 0:
                    break
                if int((~removed[k]).sum()) > 1:  # the group's last unit stays
                    removed[k][u], quota = True, quota - 1
            masks = {n: m.clone() for n, m in ctx.masks.masks.items()}
            for g, r in zip(groups, removed):
                masks.update(g.masks(r, masks))
            ctx.masks.set(masks)
            for acc in importance:
                acc.zero_()

        ctx.train(steps=steps, every=1, callback=accumulate_and_prune, lr_scale=ctx.final_lr_factor,
                  lr_schedule=False)
