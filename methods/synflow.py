"""SynFlow: iterative synaptic flow pruning, data-free, at initialization.

Tanaka, Kunin, Yamins & Ganguli 2020, "Pruning neural networks without any data by iteratively
conserving synaptic flow" (NeurIPS), Algorithm 1: for k = 1..n, linearise the network (replace
every parameter by its absolute value), feed an all-ones input, compute
R = 1ᵀ (∏_l |W^[l]|) 1 (the sum of the outputs), score every weight by
S(θ) = ∂R/∂θ ⊙ θ, and keep the top (1 - s)^(k/n) fraction (global ranking, exponential schedule
of compression); restore the signs. Because R and its scores are conserved layer by layer
(Theorem 1: the scores of a layer sum to R in a linear chain) and pruning is iterative, no layer
is cut before the network collapses — SynFlow avoids layer collapse where one-shot SNIP and
GraSP do not.

Defaults: n = 100 rounds (the paper's SynFlow experiments), exponential schedule, global. As in
the authors' code the network is in evaluation mode (BatchNorm uses its running statistics, made
absolute too) and biases and buffers are linearised with the weights. R is computed in double
precision, which the paper recommends against overflow (the public code has ``model.double()``
commented out); the linearised copy is built with ``torch.func.functional_call``, so the model's
weights are never touched and nothing needs restoring. Data-free: one training batch is read
(and charged) only for the shape of one input; each round is charged as one dense pass over one
example. Token-id inputs: an nn.Embedding is a linear map of one-hot vectors, so the all-ones
input in that space is the sum of |E|'s rows (see ``sparsebench.scores.synaptic_flow``); models
with integer inputs and no embedding raise a clear error. SynFlow's premise (Theorem 1,
conservation) holds for networks of linear and ReLU-like layers: where the linearisation itself
cuts a layer off — the saturated sigmoid/tanh gates of an LSTM, attention's softmax over
identical positions, so that a prunable layer's scores are all (numerically) zero before any
pruning — the method raises a clear error instead of removing that layer whole (``check_flow``);
the trial is then recorded as failed with that reason.
"""
from dataclasses import dataclass

import torch

from sparsebench.ablations import PruneAtInit, exponential_sparsities, register_with_ablations
from sparsebench.scores import synaptic_flow


def input_of(batch) -> torch.Tensor:
    """The model input of a training batch: its first element."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def check_flow(scores: dict[str, torch.Tensor], ratio: float = 1e-12) -> None:
    """Raise if a layer of the unpruned network carries no synaptic flow. In networks of linear
    and ReLU-like layers every layer's scores sum to about R (Theorem 1); a layer whose sum is
    nothing next to the others is cut off by the linearisation itself — saturated sigmoid / tanh
    gates (LSTM) or a softmax over identical positions (attention) — and SynFlow would remove it
    whole: its premise does not hold for that network."""
    sums = {n: float(s.sum()) for n, s in scores.items()}
    top = max(sums.values())
    dead = [n for n, v in sums.items() if not v > ratio * top]
    if dead:
        raise ValueError(f"SynFlow: no synaptic flow reaches {', '.join(dead)} in the linearised network; "
                         "the method assumes linear / ReLU-like layers (no saturating gates or attention softmax)")


@register_with_ablations("synflow")
@dataclass
class SynFlow(PruneAtInit):
    rounds: int = 100  # n, pruning iterations of the exponential schedule

    criterion = "synaptic-flow"
    paper = ("Tanaka et al. 2020, Pruning neural networks without any data by iteratively conserving "
             "synaptic flow (NeurIPS)")

    def sparsities(self, ctx):
        return exponential_sparsities(ctx.sparsity, self.rounds)

    def prune(self, ctx, init):
        self._example = input_of(next(iter(ctx.batches(1))))[:1]
        try:
            super().prune(ctx, init)
        finally:
            del self._example

    def score(self, ctx, weights):
        scores = synaptic_flow(ctx.model, list(ctx.masks), self._example)
        ctx.charge(1)
        if ctx.masks.density() == 1.0:
            check_flow(scores)
        # ranked in float32 by the masks: scale into range first (R may exceed float32's)
        top = max(float(s.max()) for s in scores.values())
        return {n: (s / top if top > 0 else s).float() for n, s in scores.items()}
