"""FORCE and Iterative SNIP: progressive skeletonization at initialization.

de Jorge, Sanyal, Behl, Torr, Rogez & Dokania 2021, "Progressive Skeletonization: Trimming more
fat from a network at initialization" (ICLR), §4. Both maximise the foresight connection
sensitivity — SNIP's |θ ⊙ ∂L(θ ⊙ c)/∂(θ ⊙ c)| measured on the *pruned* network θ ⊙ c rather than
on the dense one — by pruning gradually over T steps with an exponential schedule of densities
(k_t = exp(α log k + (1 - α) log m), α = t / T, m the number of weights, k the target):

- ``iter-snip`` (Iterative SNIP): at each step, score the remaining weights of the current
  network and keep the top k_t of them; a pruned weight stays pruned.
- ``force`` (FORCE): at each step, score *every* weight with its initial value θ0 and the
  gradient of the current pruned network, and keep the top k_t over all of them: a weight pruned
  at an earlier step can be revived (with its initial value).

Defaults follow the authors' public code and its CIFAR-10 command (github.com/naver/force,
README): T = 60 steps (``--num_steps 60``), exponential schedule (``--mode exp``), gradients
averaged over one fresh mini-batch per step (``--num_batches 1``; 10 for CIFAR-100, 20 for
Tiny ImageNet, 40 for ImageNet), global ranking. The mini-batch is the task's training batch
(``ctx.batches``, charged as a dense forward and backward each). No optimizer step; the weights
are reset to their initial values, apart from the zeros, before training.

Mode: training mode while scoring (BatchNorm on batch statistics), as the authors' code: the
network built in ``train_cifar_tiny_imagenet.py`` is passed to ``iterative_pruning``
(``pruning/pruning_algos.py``) without a call to ``eval()``, and its deep copies keep the
training mode a new module has. ``score_mode="eval"`` is the other choice.
"""
from dataclasses import dataclass

from sparsebench import Integer
from sparsebench.library.ablations import PruneAtInit, exponential_sparsities, register_with_ablations
from sparsebench.library.scores import connection_sensitivity


@register_with_ablations("force", revive=True)
@register_with_ablations("iter-snip", revive=False)
@dataclass
class ProgressiveSkeletonization(PruneAtInit):
    revive: bool = True    # FORCE (True): pruned weights may come back; Iterative SNIP (False)
    steps: int = 60        # T, pruning steps of the exponential schedule
    num_batches: int = 1   # mini-batches averaged per step, a fresh draw each step
    bounds = {"steps": "[1, inf)", "num_batches": "[1, inf)"}

    # T, the number of pruning steps of the schedule (de Jorge et al. 2021 §4; 60 here, see above)
    search_space = {"steps": Integer(20, 300, log=True)}

    criterion = "gradient"
    paper = ("de Jorge et al. 2021, Progressive Skeletonization: Trimming more fat from a network "
             "at initialization (ICLR)")

    def sparsities(self, ctx):
        return exponential_sparsities(ctx.sparsity, self.steps)

    def score(self, ctx, weights):
        # the gradient of the current pruned network, times the initial (dense) weights
        return connection_sensitivity(ctx.masks.params, ctx.batches(self.num_batches), ctx.loss, weights)
