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
the authors' code (github.com/ganguli-lab/Synaptic-Flow, ``prune.py``: ``model.eval()`` unless
``--prune-train-mode``) the network is in evaluation mode (BatchNorm uses its running statistics,
made absolute too; ``score_mode="train"`` for batch statistics) and biases and buffers are
linearised with the weights. Each round k < n keeps N - int((1 - d_k) N) of the N prunable
weights, the count of the authors' ``Pruners/pruners.py`` (``k = int((1.0 - sparsity) *
global_scores.numel())`` weights at or below the k-th score are pruned, ``sparsity`` being the
density d_k there); the last round keeps exactly round(d N), the target, where the code would keep
N - int((1 - d) N) (at most one weight more): the harness holds every method to the same count
(P1), so the final count is its, not the code's. (Version 1 kept round(d_k N) in every round.) R is computed in double
precision, which the paper recommends against overflow (the public code has ``model.double()``
commented out); the linearised copy is built with ``torch.func.functional_call``, so the model's
weights are never touched and nothing needs restoring. Data-free: one training batch is read
(and charged) only for the shape of one input; each round is charged as one dense pass over one
example. Token-id inputs: an nn.Embedding is a linear map of one-hot vectors, so the all-ones
input in that space is the sum of |E|'s rows (see ``sparsebench.library.scores.synaptic_flow``); models
with integer inputs and no embedding raise a clear error. SynFlow's premise (Theorem 1,
conservation) holds for networks of linear and ReLU-like layers: where the linearisation itself
cuts a layer off — the saturated sigmoid/tanh gates of an LSTM, attention's softmax over
identical positions, so that a prunable layer's scores are all (numerically) zero before any
pruning — the method raises a clear error instead of removing that layer whole (``check_flow``);
the trial is then recorded as failed with that reason.
"""
from dataclasses import dataclass

import torch

from sparsebench import Integer
from sparsebench.library.ablations import PruneAtInit, exponential_sparsities, register_with_ablations
from sparsebench.library.scores import synaptic_flow


def input_of(batch) -> torch.Tensor:
    """The model input of a training batch: its first element."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def reference_round_sparsity(sparsity: float, n: int) -> float:
    """The sparsity whose kept count is the authors' N - int((1 - d) N) for density d = 1 - sparsity."""
    return 1.0 - (n - int(sparsity * n)) / n


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
    score_mode: str = "eval"  # Synaptic-Flow prune.py: model.eval()
    bounds = {"rounds": "[1, inf)"}

    version = "2"
    # the number of rounds is the paper's one knob (Fig. 6 / Appendix: 100 by default; fewer rounds
    # collapse layers sooner)
    search_space = {"rounds": Integer(10, 300, log=True)}

    criterion = "synaptic-flow"
    paper = ("Tanaka et al. 2020, Pruning neural networks without any data by iteratively conserving "
             "synaptic flow (NeurIPS)")

    def sparsities(self, ctx):
        n = sum(ctx.masks[name].numel() for name in ctx.masks)
        *rounds, last = exponential_sparsities(ctx.sparsity, self.rounds)
        return [reference_round_sparsity(s, n) for s in rounds] + [last]

    def prune(self, ctx, init):
        self._example = input_of(next(iter(ctx.batches(1))))[:1]
        try:
            super().prune(ctx, init)
        finally:
            del self._example

    def score(self, ctx, weights):
        scores = synaptic_flow(ctx.model, list(ctx.masks), self._example, train=self.score_mode == "train")
        ctx.charge(1)
        if ctx.masks.density() == 1.0:
            check_flow(scores)
        # ranked in float32 by the masks: scale into range first (R may exceed float32's)
        top = max(float(s.max()) for s in scores.values())
        return {n: (s / top if top > 0 else s).float() for n, s in scores.items()}
