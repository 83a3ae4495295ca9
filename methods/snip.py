"""SNIP: single-shot network pruning based on connection sensitivity, at initialization.

Lee, Ajanthan & Torr 2019, "SNIP: Single-shot Network Pruning based on Connection Sensitivity"
(ICLR), Algorithm 1: sample a mini-batch of training data; compute the connection sensitivity
s_j = |g_j(w; D)| / Σ_k |g_k(w; D)| with g_j = ∂L(c ⊙ w; D)/∂c_j at c = 1, i.e. |∂L/∂w_j · w_j|;
keep the κ weights of highest sensitivity over the whole network (global top-κ, exact count);
then train the pruned network in the standard way.

Defaults: one mini-batch (the paper's Algorithm 1), of the task's training batch size; the
normalization by Σ|g| is dropped, as it changes no rank. The model is in training mode while
scoring (batch statistics in BatchNorm, as in a training step); no optimizer step is taken and
the weights are left as at initialization apart from the pruned zeros.
"""
from dataclasses import dataclass

from sparsebench.ablations import PruneAtInit, register_with_ablations
from sparsebench.scores import connection_sensitivity, model_mode


@register_with_ablations("snip")
@dataclass
class SNIP(PruneAtInit):
    num_batches: int = 1  # mini-batches of training data for the sensitivity (Algorithm 1: one)

    criterion = "gradient"
    paper = "Lee et al. 2019, SNIP: Single-shot Network Pruning based on Connection Sensitivity (ICLR)"

    def score(self, ctx, weights):
        with model_mode(ctx.model, train=True):
            return connection_sensitivity(ctx.masks.params, ctx.batches(self.num_batches), ctx.loss, weights)
