"""SNIP: single-shot network pruning based on connection sensitivity, at initialization.

Lee, Ajanthan & Torr 2019, "SNIP: Single-shot Network Pruning based on Connection Sensitivity"
(ICLR), Algorithm 1: sample a mini-batch of training data; compute the connection sensitivity
s_j = |g_j(w; D)| / Σ_k |g_k(w; D)| with g_j = ∂L(c ⊙ w; D)/∂c_j at c = 1, i.e. |∂L/∂w_j · w_j|;
keep the κ weights of highest sensitivity over the whole network (global top-κ, exact count);
then train the pruned network in the standard way.

Defaults: one mini-batch (the paper's Algorithm 1), of the task's training batch size; the
normalization by Σ|g| is dropped, as it changes no rank. No optimizer step is taken and the
weights are left as at initialization apart from the pruned zeros.

Mode: the model scores in evaluation mode (BatchNorm on its running statistics, at
initialization mean 0 and variance 1), as the authors' code does (github.com/namhoonlee/
snip-public, ``snip/prune.py``: ``model.is_train: False`` in the feed of the pruning step) and
Tanaka et al.'s re-implementation (github.com/ganguli-lab/Synaptic-Flow, ``prune.py``:
``model.eval()`` unless ``--prune-train-mode``). ``score_mode="train"`` scores on batch
statistics instead; on ResNet-20 the two give very different masks. Version 1 scored in training
mode.
"""
from dataclasses import dataclass

from sparsebench import Choice
from sparsebench.library.ablations import PruneAtInit, register_with_ablations
from sparsebench.library.scores import connection_sensitivity


@register_with_ablations("snip")
@dataclass
class SNIP(PruneAtInit):
    num_batches: int = 1  # mini-batches of training data for the sensitivity (Algorithm 1: one)
    score_mode: str = "eval"  # snip-public: is_train False while pruning
    bounds = {"num_batches": "[1, inf)"}

    version = "2"
    # the sensitivity's only knob: Algorithm 1 uses one mini-batch; more average out its noise
    search_space = {"num_batches": Choice(1, 2, 4, 8)}

    criterion = "gradient"
    paper = "Lee et al. 2019, SNIP: Single-shot Network Pruning based on Connection Sensitivity (ICLR)"

    def score(self, ctx, weights):
        return connection_sensitivity(ctx.masks.params, ctx.batches(self.num_batches), ctx.loss, weights)
