"""N:M magnitude pruning after training, then retraining: NVIDIA's ASP recipe.

Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks" (arXiv:2104.08378); code:
github.com/NVIDIA/apex, ``apex/contrib/sparsity`` (``ASP.prune_trained_model``, the ``m4n2_1d``
mask calculator). Algorithm (their §3): train the dense network; in every run of M = 4
consecutive weights along each layer's input dimension keep the N = 2 of largest magnitude (the
2:4 pattern of Ampere's sparse tensor cores); retrain with the masks fixed, the same
hyperparameters and schedule as the dense training (``retrain="lr-rewind"``, the whole schedule).
``nm-magnitude-4:8`` keeps 4 of every 8; ``nm-magnitude-oneshot`` and ``nm-magnitude-oneshot-4:8``
do not retrain (the one-shot track's magnitude rows of the N:M tables). Convolutions are masked along their flattened inputs
(``weight.view(out, -1)``: the code's ``m4n2_1d`` on the permuted 2-d view groups input channels
for a kernel position instead — a deviation in which weights share a run, not in the pattern's
density). The target sparsity must be 1 − N/M (50 % for both variants); another is refused.

The speedup this pattern can buy needs sparse tensor cores: the harness times it on a CPU as
the dense form (no CPU kernel exists), so its measured speedup there is about 1.
"""
from dataclasses import dataclass

from sparsebench import magnitude_scores, register_method
from sparsebench.library.posttraining import PruneAfterTraining
from sparsebench.library.structures import check_pattern, check_pattern_target, nm_mask


@register_method("nm-magnitude", n=2, m=4)
@register_method("nm-magnitude-4:8", n=4, m=8)
@register_method("nm-magnitude-oneshot", n=2, m=4, retrain="none")
@register_method("nm-magnitude-oneshot-4:8", n=4, m=8, retrain="none")
@dataclass
class NMMagnitude(PruneAfterTraining):
    n: int = 2  # weights kept in every run of m
    m: int = 4
    bounds = {"n": "[1, inf)", "m": "[2, inf)"}

    criterion = "magnitude"
    structure = "n:m"
    paper = "Mishra et al. 2021, Accelerating Sparse Deep Neural Networks (arXiv:2104.08378); NVIDIA ASP"
    untuned = "the pattern is the hardware's (2:4), and the recipe retrains with the dense training's schedule"

    def __post_init__(self):
        super().__post_init__()
        check_pattern(self.n, self.m)

    def check_target(self, sparsity):
        check_pattern_target(sparsity, self.n, self.m)

    def masks(self, ctx, scores):
        self.check_target(ctx.sparsity)
        return {name: nm_mask(s, self.n, self.m) for name, s in scores.items()}

    def score(self, ctx):
        return magnitude_scores(ctx.masks)
