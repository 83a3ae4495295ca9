"""Pruning after training: train dense, score once, prune to the target, then retrain or not.

The shape shared by one-shot magnitude pruning (Han et al. 2015), Wanda (Sun et al. 2024) and
the other post-training criteria: only ``score`` (and, where the comparison group is not a
layer-density rule, ``masks``) differs between them. Retraining follows Renda et al. 2020
("Comparing Rewinding and Fine-tuning in Neural Network Pruning", ICLR; their code's
``lr_rewind`` and ``fine_tune`` modes):

- ``retrain="lr-rewind"``: retrain from the pruned weights with the last t steps of the recipe's
  learning-rate schedule (t = ``retrain_fraction`` of one training; 1 replays it all);
- ``retrain="finetune"``: t steps at the recipe's final learning rate, held constant;
- ``retrain="none"``: the pruned network as it is — post-training ("one-shot") pruning.

``lr_scale`` scales the retraining's rate (1: as published).

Calibration data (:func:`input_norms`, for criteria that weigh weights by their inputs) comes from
the training split through ``ctx.batches(n, forward_only=True)``, charged as forward passes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sparsebench.core.method import Method
from sparsebench.core.space import Uniform

RETRAIN = ("lr-rewind", "finetune", "none")


@dataclass
class PruneAfterTraining(Method):
    """Train, prune once by ``score`` (at ``rule``'s layer densities), retrain as ``retrain`` says."""

    rule: str = "global"            # global | uniform (every layer at the target)
    retrain: str = "lr-rewind"      # lr-rewind | finetune | none (Renda et al. 2020)
    retrain_fraction: float = 1.0   # t, retraining steps as a fraction of one training
    lr_scale: float = 1.0           # the retraining's learning rate relative to the rule's (1: as published)
    bounds = {"retrain_fraction": "(0, 10]", "lr_scale": "(0, inf)"}

    when = "after"

    def __post_init__(self):
        if self.retrain not in RETRAIN:
            raise ValueError(f"unknown retrain {self.retrain!r}; choose one of {', '.join(RETRAIN)}")

    def space(self, sparsity):
        # Renda et al. 2020 (Fig. 4-6) vary the retraining length t; the rate scale is the practitioner's
        # other knob (Han et al. 2015 retrain at the recipe's rate, Renda et al. fine-tune at its final one)
        if self.retrain == "none":
            return {}
        return {"retrain_fraction": Uniform(0.25, 1.0), "lr_scale": Uniform(0.1, 3.0, log=True)}

    def score(self, ctx) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def masks(self, ctx, scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Masks chosen from ``scores`` in another comparison group than ``rule``'s, else None."""
        return None

    def train_dense(self, ctx) -> None:
        """The training before pruning: the recipe's (the dense training that trials share)."""
        ctx.train()

    def run(self, ctx):
        self.train_dense(ctx)
        scores = self.score(ctx)
        chosen = self.masks(ctx, scores)
        if chosen is None:
            ctx.masks.prune(scores, ctx.sparsity, rule=self.rule)
        else:
            ctx.masks.set(chosen)
        self.retrain_pruned(ctx)

    def retrain_pruned(self, ctx) -> None:
        """Retrain the pruned network as ``retrain`` says (nothing for ``none``)."""
        t = max(1, round(self.retrain_fraction * ctx.total_steps))
        if self.retrain == "lr-rewind":
            ctx.train(steps=t, from_step=max(0, ctx.total_steps - t), lr_scale=self.lr_scale)
        elif self.retrain == "finetune":
            ctx.train(steps=t, lr_scale=ctx.final_lr_factor * self.lr_scale, lr_schedule=False)


def layer_inputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The inputs a layer's weight multiplies, one row per use: a Linear's input vectors; a
    Conv2d's receptive fields (im2col, features ordered as ``weight.view(out, -1)``)."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, module.in_features)
    if isinstance(module, nn.Conv2d) and module.groups == 1:
        cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    raise ValueError(f"a {type(module).__name__} is not a Linear or ungrouped Conv2d layer: its weight's "
                     "inputs cannot be read from a forward hook")


def lstm_inputs(lstm: nn.LSTM, x: torch.Tensor, state) -> dict[str, torch.Tensor]:
    """The inputs of each of a (unidirectional) LSTM's matrices, one row per time step and
    sequence: ``weight_ih_l{k}`` multiplies layer k's input x_t, ``weight_hh_l{k}`` its previous
    hidden state h_{t-1} (the given initial state, then its own outputs), recomputed layer by layer
    with the module's weights (eval mode: no dropout between layers)."""
    if lstm.bidirectional or lstm.proj_size:
        raise ValueError("inputs of bidirectional or projected LSTMs are not traced")
    x = x if lstm.batch_first else x.transpose(0, 1)
    out = {}
    for k in range(lstm.num_layers):
        one = nn.LSTM(x.shape[-1], lstm.hidden_size, 1, bias=lstm.bias, batch_first=True).to(x)
        weights = {n: getattr(lstm, f"{n[:-1]}{k}") for n, _ in one.named_parameters()}  # weight_ih_l0 <- _l{k}
        h0 = None if state is None else (state[0][k:k + 1], state[1][k:k + 1])
        layer, _ = torch.func.functional_call(one, weights, (x, h0))
        first = h0[0][0] if h0 is not None else x.new_zeros(len(x), lstm.hidden_size)
        previous = torch.cat([first[:, None], layer[:, :-1]], 1)
        out[f"weight_ih_l{k}"] = x.reshape(-1, x.shape[-1])
        out[f"weight_hh_l{k}"] = previous.reshape(-1, lstm.hidden_size)
        x = layer
    return out


def as_matrix(module: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """A prunable weight as the matrix (outputs × inputs) its inputs multiply: an embedding's
    transpose (a column per token), a conv's filters as rows, others as they are."""
    return weight.T if isinstance(module, nn.Embedding) else weight.flatten(1)


def readable(module: nn.Module, tensor: str) -> bool:
    """Whether :func:`input_statistics` can read the inputs of ``module``'s ``tensor``."""
    return (tensor == "weight" and (isinstance(module, (nn.Linear, nn.Embedding)) or
                                    (isinstance(module, nn.Conv2d) and module.groups == 1))
            or (isinstance(module, nn.LSTM) and tensor.startswith(("weight_ih_l", "weight_hh_l"))))


@torch.no_grad()
def input_statistics(ctx, examples: int, statistic, embeddings=None) -> dict[str, torch.Tensor]:
    """The sum over ``examples`` training examples (whole batches, forward passes only, the model
    in eval mode) of ``statistic(rows)`` for the inputs of every prunable weight, one row per use
    (:func:`layer_inputs`, :func:`lstm_inputs`), in float64. An embedding's inputs are one-hot
    token ids: its statistic is ``embeddings(counts)`` of the tokens' counts (it is pruned as the
    matrix Wᵀ, a column per token); without ``embeddings`` an embedding is refused."""
    modules = dict(ctx.model.named_modules())
    owners: dict[str, list[tuple[str, str]]] = {}
    for name in ctx.masks:
        module_name, _, tensor = name.rpartition(".")
        module = modules[module_name]
        if not readable(module, tensor) or (isinstance(module, nn.Embedding) and embeddings is None):
            raise ValueError(f"this score needs the inputs of {name} (in a {type(module).__name__}); it reads those "
                             "of Linear, Conv2d and LSTM weights" + (" and embeddings" if embeddings else ""))
        owners.setdefault(module_name, []).append((name, tensor))
    sums: dict[str, torch.Tensor] = {}

    def add(name, value):
        sums[name] = value.cpu() if name not in sums else sums[name] + value.cpu()

    def hook(module_name):
        def accumulate(module, args, out):  # returns None: the output is left as it is
            if isinstance(module, nn.LSTM):
                rows = lstm_inputs(module, args[0], args[1] if len(args) > 1 else None)
                for name, tensor in owners[module_name]:
                    add(name, statistic(rows[tensor].double()))
            elif isinstance(module, nn.Embedding):
                counts = torch.bincount(args[0].flatten(), minlength=module.num_embeddings).double()
                add(owners[module_name][0][0], embeddings(counts))
            else:
                add(owners[module_name][0][0], statistic(layer_inputs(module, args[0]).double()))
        return accumulate

    handles = [modules[m].register_forward_hook(hook(m)) for m in owners]
    was_training = ctx.model.training
    ctx.model.eval()
    try:
        for batch in ctx.batches(max(1, -(-examples // ctx.batch_size)), forward_only=True):
            ctx.loss(batch)
    finally:
        for h in handles:
            h.remove()
        ctx.model.train(was_training)
    return sums


def input_norms(ctx, examples: int) -> dict[str, torch.Tensor]:
    """‖X_j‖₂ of every input feature j of every prunable weight over the calibration inputs (of an
    embedding: the square root of each token's count)."""
    sums = input_statistics(ctx, examples, lambda x: x.pow(2).sum(0), embeddings=lambda counts: counts)
    return {n: s.sqrt().float() for n, s in sums.items()}


def input_covariances(ctx, examples: int) -> dict[str, torch.Tensor]:
    """XᵀX / rows of every prunable weight's calibration inputs (the layer-wise Hessian of the
    reconstruction error, up to a factor 2), in float64. An embedding's one-hot inputs make it
    diagonal (each token's share of the calibration tokens): given as that diagonal, a vector."""
    sums = input_statistics(ctx, examples, lambda x: torch.cat([x.T @ x, x.new_full((1, x.shape[1]), len(x))]),
                            embeddings=lambda counts: torch.cat([counts, counts.sum().reshape(1)]))
    return {n: s[:-1] / s[-1, 0] if s.dim() == 2 else s[:-1] / s[-1] for n, s in sums.items()}


def owners(ctx) -> dict[str, nn.Module]:
    """The module of each prunable weight, by the weight's name."""
    modules = dict(ctx.model.named_modules())
    return {n: modules[n.rpartition(".")[0]] for n in ctx.masks}


def unmatrix(module: nn.Module, matrix: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`as_matrix`: back to the weight's shape."""
    return (matrix.T if isinstance(module, nn.Embedding) else matrix).reshape(like.shape)
