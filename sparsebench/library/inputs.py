"""What each prunable weight multiplies: its calibration inputs, read by forward hooks.

Linear inputs, a Conv2d's receptive fields (im2col), an LSTM's x_t and h_{t-1}, an embedding's one-hot
tokens; their sums over a calibration set (:mod:`sparsebench.library.calibration_data`) as Wanda's
norms and SparseGPT's Hessians; the weights as the matrices those inputs multiply; and the blocks
in which the authors' sequential order prunes them (:func:`blocks`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparsebench.data.text import TransformerBlock


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
def input_statistics(ctx, calibration, statistic, embeddings=None, names=None) -> dict[str, torch.Tensor]:
    """The sum over a :class:`~sparsebench.library.calibration_data.Calibration` set (one forward
    pass over it, charged; the model in eval mode) of ``statistic(rows)`` for the inputs of every
    prunable weight in ``names`` (default: all), one row per use (:func:`layer_inputs`,
    :func:`lstm_inputs`), in float64. An embedding's inputs are one-hot token ids: its statistic is
    ``embeddings(counts)`` of the tokens' counts (it is pruned as the matrix Wᵀ, a column per token);
    without ``embeddings`` an embedding is refused."""
    modules = dict(ctx.model.named_modules())
    owners: dict[str, list[tuple[str, str]]] = {}
    for name in (ctx.masks if names is None else names):
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
        for batch in calibration.passes(ctx):
            ctx.loss(batch)
    finally:
        for h in handles:
            h.remove()
        ctx.model.train(was_training)
    return sums


def input_norms(ctx, calibration, names=None) -> dict[str, torch.Tensor]:
    """‖X_j‖₂ of every input feature j of every prunable weight over the calibration inputs (of an
    embedding: the square root of each token's count)."""
    sums = input_statistics(ctx, calibration, lambda x: x.pow(2).sum(0), embeddings=lambda counts: counts, names=names)
    return {n: s.sqrt().float() for n, s in sums.items()}


def input_covariances(ctx, calibration, names=None) -> dict[str, torch.Tensor]:
    """H = 2/N Σ x xᵀ over the calibration inputs of every prunable weight, N the calibration
    examples (sequences, images): the scale of SparseGPT's ``add_batch`` (IST-DASLab/sparsegpt,
    ``sparsegpt.py``: ``nsamples`` counts the batch dimension, and every row of a sequence or of an
    image's receptive fields adds to the sum), in float64. An embedding's one-hot inputs make it
    diagonal (2/N times each token's count): given as that diagonal, a vector."""
    sums = input_statistics(ctx, calibration, lambda x: x.T @ x, embeddings=lambda counts: counts, names=names)
    return {n: 2.0 * s / calibration.examples for n, s in sums.items()}


def owners(ctx) -> dict[str, nn.Module]:
    """The module of each prunable weight, by the weight's name."""
    modules = dict(ctx.model.named_modules())
    return {n: modules[n.rpartition(".")[0]] for n in ctx.masks}


def unmatrix(module: nn.Module, matrix: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`as_matrix`: back to the weight's shape."""
    return (matrix.T if isinstance(module, nn.Embedding) else matrix).reshape(like.shape)


def blocks(ctx) -> list[list[str]]:
    """The prunable weights grouped as the authors of Wanda and SparseGPT prune them, one group at a
    time, in the order a forward pass reaches them: each transformer block (an element of a
    ``ModuleList``, or a :class:`~sparsebench.data.text.TransformerBlock`: its projections share one
    calibration pass, as in ``prune_wanda`` and ``opt_sequential``) is a group, and every other
    module holding prunable weights (a Linear, a Conv2d, an LSTM, an embedding) is its own."""
    modules = dict(ctx.model.named_modules())

    def group(name):
        parts = name.rpartition(".")[0].split(".")
        for i in range(1, len(parts)):
            if isinstance(modules[".".join(parts[:i])], nn.ModuleList):
                return ".".join(parts[:i + 1])
            if isinstance(modules[".".join(parts[:i])], TransformerBlock):
                return ".".join(parts[:i])
        return ".".join(parts)

    reached: list[str] = []
    hooks = [modules[m].register_forward_pre_hook(lambda mod, args, m=m: reached.append(m))
             for m in {n.rpartition(".")[0] for n in ctx.masks}]
    was_training = ctx.model.training
    ctx.model.eval()
    try:
        with torch.no_grad():
            ctx.loss(ctx.example())
    finally:
        for h in hooks:
            h.remove()
        ctx.model.train(was_training)
    order = {m: i for i, m in reversed(list(enumerate(reached)))}  # first reached
    out: dict[str, list[str]] = {}
    for name in sorted(ctx.masks, key=lambda n: order.get(n.rpartition(".")[0], len(order))):
        out.setdefault(group(name), []).append(name)
    return list(out.values())  # in the order of their first weights
