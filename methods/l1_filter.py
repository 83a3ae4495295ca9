"""L1-norm filter pruning after training: whole filters and neurons, then fine-tuning.

Li, Kadav, Durdanovic, Samet & Graf 2017, "Pruning Filters for Efficient ConvNets" (ICLR; no code
from the authors). Algorithm (their §3.1): train the dense network; in every layer, rank its
filters by the sum of their absolute kernel weights, ‖F‖₁, and remove the given fraction of
lowest-ranked ones, with their feature maps and the next layer's kernels that read them
(:mod:`sparsebench.library.structures`: a Linear layer's output neurons alike); prune once, then
retrain. On ResNets they prune only the first layer of each residual block, leaving the channels
that residual connections tie together (their §4.2) — ``shared=False``, the default, leaves every
group produced by several layers (residual streams; in a transformer, attention's q/k/v channels,
so that its MLP neurons are pruned); ``shared=True`` prunes those too, ranked by the filter norm of
the group's first producer.

Here ``sparsity`` is the fraction of every group's units removed (the paper's per-layer pruning
ratio); the harness counts the weight sparsity that follows (a removed filter takes its rows and
the next layer's columns) and reports both. Retraining: fine-tuning at a constant learning rate,
the recipe's final one, for a quarter of a training (``retrain="finetune"``,
``retrain_fraction=0.25``: the paper retrains at a constant small rate for a fraction of the
original schedule; its exact epochs are not given for every model). ``l1-filter-rewind`` retrains
with learning-rate rewinding instead, the magnitude baseline's default (Renda et al. 2020).
"""
from dataclasses import dataclass

from sparsebench import magnitude_scores, register_method
from sparsebench.library.posttraining import PruneAfterTraining
from sparsebench.library.structures import structured_masks


@register_method("l1-filter", retrain="finetune", retrain_fraction=0.25)
@register_method("l1-filter-rewind", retrain="lr-rewind")
@dataclass
class L1Filter(PruneAfterTraining):
    shared: bool = False  # also prune units several layers produce (residual streams): not in the paper

    criterion = "magnitude"
    structure = "filters"
    exact_sparsity = False  # the target is a fraction of units; the weights' sparsity follows from it
    paper = "Li et al. 2017, Pruning Filters for Efficient ConvNets (ICLR)"

    def score(self, ctx):
        return magnitude_scores(ctx.masks)

    def masks(self, ctx, scores):
        return structured_masks(ctx, scores, ctx.sparsity, shared=self.shared)
