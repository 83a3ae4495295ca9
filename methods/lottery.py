"""Iterative magnitude pruning (IMP) with rewinding: lottery tickets and learning-rate rewinding.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural
Networks" (ICLR), §1 and §2 (iterative pruning): randomly initialize the network (θ0), train it,
prune p % of the remaining weights (smallest magnitude), reset the survivors to θ0, repeat.
Their pruning is layer-wise: each layer loses p % of its remaining weights per round, the output
layer half as many ("connections to output layers pruned at half the rate", LeNet p = 20 %,
output 10 %; Figure 2 and Appendix). ``lottery`` registers that default.

Frankle, Dziugaite, Roy & Carbin 2020, "Linear Mode Connectivity and the Lottery Ticket
Hypothesis" (ICML), Algorithm 2 (IMP with rewinding to iteration k): the same loop, but the
survivors are reset to their values at iteration k of the first training (θk) and retrained for
the rest of the schedule, from k, with the optimizer started afresh. They prune globally,
20 % per round (OpenLTH's default strategy, sparse_global; its LeNet default also leaves the
output layer dense, which is not done here: the target counts every prunable weight).
``lottery-rewind`` rewinds to k = 3 % of training (the paper's rewinding iterations for the
standard vision networks are of that order, e.g. 2000 of about 63k iterations for ResNet-20;
for LeNet on MNIST k = 0 already works), given either as ``rewind_fraction`` or in iterations as
``rewind_steps`` (OpenLTH writes these ``2000it`` / ``2ep``).

Renda, Frankle & Carbin 2020, "Comparing Rewinding and Fine-tuning in Neural Network Pruning"
(ICLR), Algorithm 1 (learning-rate rewinding): keep the final weights of each training, prune
20 % globally, retrain for the original training time with the learning-rate schedule replayed
from its start (k = 0), repeat. ``lr-rewind``.

Random reinitialization (Frankle & Carbin 2019, §2, "Random reinitialization", Figures 3 and 4,
orange): the winning ticket's mask, trained from a new random initialization instead of θ0.
``lottery-reinit`` (``reinit=True``) runs the same rounds (reset to θ0 each time, so that it finds
the same mask as ``lottery`` with the same seed) and trains only the last round's network from a
new draw of the task's initialization (:func:`sparsebench.library.ablations.reinitialize`, the
sanity check ``snip+reinit`` uses).

Rounds: n = ceil(log(1 - s) / log(1 - p)) prunings reach the target s; each of the first n - 1
keeps round((1 - p) x remaining) weights (per layer for ``layerwise``), and the last prunes
exactly to the target (with ``layerwise``, the last round scales every layer's rate by one
factor so that the total is exact). Every round is a full (re)training, counted by the harness:
a ticket costs n + 1 trainings of steps (less in FLOPs, as the networks get sparser).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sparsebench import Method, Uniform, magnitude_scores, register_method
from sparsebench.library.ablations import reinitialize


def num_rounds(sparsity: float, rate: float) -> int:
    """Prunings of ``rate`` of the remaining weights needed to reach ``sparsity``."""
    if sparsity <= 0.0:
        return 0
    return max(1, math.ceil(math.log(1.0 - sparsity) / math.log(1.0 - rate) - 1e-9))


def round_keep_counts(remaining: dict[str, int], rates: dict[str, float], total_keep: int | None) -> dict[str, int]:
    """Weights to keep per layer after one round: ``round((1 - rate) * remaining)`` for each layer,
    or, with ``total_keep`` (the last round), the per-layer rates scaled by one factor so that
    exactly ``total_keep`` weights remain in all."""
    if total_keep is None:
        return {n: round((1.0 - rates[n]) * k) for n, k in remaining.items()}
    kept = sum(remaining.values())
    weighted = sum(rates[n] * k for n, k in remaining.items())
    scale = (kept - total_keep) / weighted if weighted else 0.0
    keep = {n: min(k, max(0, round(k * (1.0 - scale * rates[n])))) for n, k in remaining.items()}
    largest = max(keep, key=lambda n: remaining[n])
    keep[largest] += total_keep - sum(keep.values())  # rounding: the largest layer absorbs it
    return keep


@register_method("lottery", rule="layerwise", rewind="weights", rewind_fraction=0.0)
@register_method("lottery-reinit", rule="layerwise", rewind="weights", rewind_fraction=0.0, reinit=True)
@register_method("lottery-rewind", rule="global", rewind="weights", rewind_fraction=0.03)
@register_method("lr-rewind", rule="global", rewind="lr", rewind_fraction=0.0)
@dataclass
class IterativeMagnitude(Method):
    rate: float = 0.2                # p: fraction of the remaining weights pruned per round
    rule: str = "layerwise"          # layerwise (Frankle & Carbin 2019) | global (Frankle et al. 2020, Renda et al.)
    output_rate: float = 0.5         # layerwise: the output layer is pruned at this multiple of ``rate``
    rewind: str = "weights"          # weights (lottery tickets) | lr (learning-rate rewinding)
    rewind_fraction: float = 0.0     # k as a fraction of one training (0: the original init / full schedule)
    rewind_steps: int | None = None  # k in iterations; overrides ``rewind_fraction``
    reinit: bool = False             # the last round trains from a new random initialization (not θk)
    bounds = {"rule": ("layerwise", "global"), "rewind": ("weights", "lr"), "rate": "(0, 1)", "output_rate": "[0, 1)", "rewind_fraction": "[0, 1]", "rewind_steps": "[0, inf)"}

    when = "after"
    criterion = "magnitude"
    paper = ("Frankle & Carbin 2019, The Lottery Ticket Hypothesis (ICLR); Frankle et al. 2020, Linear Mode "
             "Connectivity and the Lottery Ticket Hypothesis (ICML); Renda et al. 2020, Comparing Rewinding "
             "and Fine-tuning in Neural Network Pruning (ICLR)")

    def __post_init__(self):
        if self.rule not in ("layerwise", "global"):
            raise ValueError(f"rule must be 'layerwise' or 'global', got {self.rule!r}")
        if self.rewind not in ("weights", "lr"):
            raise ValueError(f"rewind must be 'weights' or 'lr', got {self.rewind!r}")
        if self.reinit and self.rewind != "weights":
            raise ValueError("reinit replaces the rewound weights: it needs rewind='weights'")

    def space(self, sparsity):
        # p: Frankle & Carbin prune 20 % a round; higher rates need fewer rounds (cheaper, and worse in
        # their Fig. 4), lower ones more rounds than a budget-bound suite affords. k: the rewinding point
        # (Frankle et al. 2020 find tickets from about 0.1-7 % of training on)
        space = {"rate": Uniform(0.2, 0.5)}
        if self.rewind == "weights":
            space["rewind_fraction"] = Uniform(0.0, 0.1)
        return space

    def rewind_step(self, total_steps: int) -> int:
        k = self.rewind_steps if self.rewind_steps is not None else round(self.rewind_fraction * total_steps)
        return min(max(0, k), total_steps - 1)

    def layer_rates(self, names: list[str]) -> dict[str, float]:
        """Fraction of each layer's remaining weights pruned per round (``layerwise``)."""
        return {n: self.rate * (self.output_rate if n == names[-1] and len(names) > 1 else 1.0) for n in names}

    def prune_round(self, ctx, last: bool) -> None:
        """Prune the smallest-magnitude weights: ``rate`` of what remains, or to the target if ``last``."""
        masks = ctx.masks
        remaining = {n: int(m.sum().item()) for n, m in masks.masks.items()}
        numel = {n: m.numel() for n, m in masks.masks.items()}
        total = sum(numel.values())
        scores = magnitude_scores(masks)
        if self.rule == "global":
            kept = sum(remaining.values())
            keep = round((1.0 - ctx.sparsity) * total) if last else round((1.0 - self.rate) * kept)
            masks.prune(scores, 1.0 - keep / total, rule="global")
            return
        target = round((1.0 - ctx.sparsity) * total) if last else None
        keep = round_keep_counts(remaining, self.layer_rates(list(masks)), target)
        for name, k in keep.items():
            masks.prune({name: scores[name]}, 1.0 - k / numel[name], rule="uniform")

    def run(self, ctx):
        k = self.rewind_step(ctx.total_steps)
        rewind_point = {}

        def capture(i):                                         # θk: after k optimizer steps
            if i == k:
                rewind_point["weights"] = ctx.snapshot()

        if self.rewind == "lr":
            ctx.train()                                         # weights are never rewound
        elif k == 0:
            capture(0)                                          # θ0, the original initialization
            ctx.train()
        else:
            ctx.train(every=k, callback=capture)
        rounds = num_rounds(ctx.sparsity, self.rate)
        for r in range(1, rounds + 1):
            self.prune_round(ctx, last=r == rounds)
            if self.rewind == "weights":
                ctx.restore(rewind_point["weights"])            # survivors back to θk, pruned stay zero
                if self.reinit and r == rounds:
                    reinitialize(ctx)                           # the ticket's mask, a new random init
            ctx.train(from_step=k)                              # the schedule replayed from k
