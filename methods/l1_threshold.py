"""L1 regularization during training, then magnitude thresholding to the target, then retraining.

The classic regularize-then-prune baseline (Hoefler et al. 2021, "Sparsity in Deep Learning", §3.6:
a sparsifying penalty drives weights towards zero, which a magnitude threshold then removes), as
Han et al. 2015, "Learning both Weights and Connections for Efficient Neural Networks" (NeurIPS),
§3.1 and Fig. 5, run it when they compare L1 with L2 regularization before pruning ("L1
regularization w/ retrain"): L1 leaves more weights near zero, hence a better accuracy right after
pruning, though L2 retrains better.

Algorithm: train with the task's recipe and the penalty λ‖W‖₁ on the prunable weights, added to
their gradients as the subgradient λ·sign(W) before each optimizer step (as STR adds its decay);
remove the smallest-magnitude weights, over all layers together (``rule="global"``; ``uniform``:
every layer at the target, as Han et al.), to the exact target; retrain the rest without the
penalty, as :mod:`sparsebench.library.posttraining` retrains (``retrain="lr-rewind"`` with one
training replays the recipe's schedule: Han et al.'s retraining; ``finetune``; ``none``: the pruned
network as the L1 training left it).

λ: Han et al. publish none. The default 1e-4 (per weight, on the mean batch loss) was measured on
LeNet-300-100 / MNIST with Adam (``lenet300-mnist``, profile ``quick``, 90 %, seed 0): pruned without
retraining, λ = 0, 1e-5, 1e-4 reach 94.62, 94.93, 97.41 % test accuracy — the penalty does its job —
and after retraining 98.10, 98.01, 97.95 % (as in Han et al.'s Fig. 5, L1's gain is before
retraining). Tune it with ``l1`` (the tuned track searches it). With ``l1=0`` the method is
``magnitude`` (the same shared dense training).
"""
from dataclasses import dataclass

import torch

from sparsebench import Uniform, magnitude_scores, register_method
from sparsebench.library.posttraining import PruneAfterTraining


@register_method("l1-threshold")
@dataclass
class L1Threshold(PruneAfterTraining):
    l1: float = 1e-4  # λ of λ‖W‖₁ on the prunable weights
    bounds = {"l1": "[0, inf)"}

    criterion = "magnitude (L1-regularized)"
    paper = "Han et al. 2015, Learning both Weights and Connections for Efficient Neural Networks (NeurIPS)"

    def space(self, sparsity):
        # λ from 1e-6 to 1e-2, the default in the middle (Han et al. give none), and the retraining's knobs
        return {"l1": Uniform(1e-6, 1e-2, log=True), **super().space(sparsity)}

    def train_dense(self, ctx):
        weights = list(ctx.masks.params.values())

        @torch.no_grad()
        def l1_subgradient(_):
            with_grad = [w for w in weights if w.grad is not None]
            torch._foreach_add_([w.grad for w in with_grad], torch._foreach_sign(with_grad), alpha=self.l1)

        ctx.train(every=1, callback=l1_subgradient) if self.l1 else ctx.train()

    def score(self, ctx):
        return magnitude_scores(ctx.masks)
