"""Structures: the groups of weights that structured and N:M methods remove together.

A *group* holds *units* — an output channel of a convolution, an output neuron of a Linear layer,
an attention head (:func:`head_groups`) — each of which, removed, takes a slice of several prunable weights at once: its rows in the layers
that produce it and its columns in every layer that reads it. Groups come from Torch-Pruning's
dependency graph (Fang et al. 2023, "DepGraph: Towards Any Structural Pruning", CVPR;
github.com/VainF/Torch-Pruning, pinned in ``constraints.txt``), traced on one real batch, so
residual connections tie a ResNet stage's channels into one group across every block that adds to
it, a flatten maps a channel onto its fc columns, and BatchNorm entries follow their channel.
Taken rather than re-derived: it is the maintained library for exactly this graph, it handles
reshapes and element-wise ops that a hand-written tracer would miss, and its ``prune()`` makes
the physically smaller model (:func:`compact`) from the same groups.

A structured mask is still a weight mask: the harness holds it exactly, as any other, and counts
sparsity from the weights. Zeroing a unit's rows and columns equals removing it: a BatchNorm
entry or bias left on a removed channel makes it a constant that no kept weight reads. So a group
is offered only where every layer it touches has a prunable weight (no embedding, no LayerNorm —
which mixes channels —, no non-prunable layer) and something reads it (a model's outputs are not
units). ``shared``: whether a group's units are produced by several layers (a residual stream,
whose channels every block adds to; attention's q, k and v, whose channels meet in q·kᵀ — such a
group is masked like any other, but a model that reshapes by its width, as attention does by its
head size, cannot be compacted: :func:`compact` then raises).

N:M sparsity (:func:`nm_mask`): in every run of M consecutive weights along a layer's input
dimension, at most N are kept (Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks";
Zhou et al. 2021, "Learning N:M Fine-grained Structured Sparse Neural Networks From Scratch").
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

UNIT_LAYERS = (nn.Conv2d, nn.Linear)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class Group:
    """Units removed together: unit u zeroes, in each member ``(weight, axis, indices)``, the
    entries ``indices[u]`` along ``axis`` (0: the rows of a producer, 1: the columns of a reader)."""

    root: str  # the prunable weight whose output units these are
    members: tuple[tuple[str, int, tuple[tuple[int, ...], ...]], ...]

    @functools.cached_property
    def flat(self) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """Per member, (the unit of each index, the indices): built once, for sums over units."""
        return tuple((torch.cat([torch.full((len(idx),), u) for u, idx in enumerate(indices)]),
                      torch.tensor([i for idx in indices for i in idx])) for _, _, indices in self.members)

    @property
    def units(self) -> int:
        return len(self.members[0][2])

    @property
    def shared(self) -> bool:
        return sum(axis == 0 for _, axis, _ in self.members) > 1

    def masks(self, removed: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """0/1 masks (ones where ``like`` has no entry yet) with the ``removed`` units' slices zeroed."""
        out = {}
        for name, axis, indices in self.members:
            mask = like[name].clone()
            for u in removed.nonzero().flatten().tolist():
                mask.index_fill_(axis, torch.tensor(indices[u]), 0.0)
            out[name] = mask
        return out


def find_groups(model: nn.Module, prunable: list[str], example, forward: Callable[[nn.Module, object], object]
                ) -> list[Group]:
    """The removable groups of ``model`` (Torch-Pruning's dependency graph on ``example``)."""
    import torch_pruning as tp

    names = {m: n for n, m in model.named_modules()}
    was_training = model.training
    model.eval()
    try:
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example, forward_fn=forward)
    finally:
        model.train(was_training)
    groups, seen = [], set()
    for name in prunable:
        module_name, _, tensor = name.rpartition(".")
        module = model.get_submodule(module_name)
        if tensor != "weight" or not isinstance(module, UNIT_LAYERS) or name in seen:
            continue
        handler = graph.get_pruner_of_module(module).prune_out_channels
        width = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        per_unit = [_slices(graph.get_pruning_group(module, handler, idxs=[u]), names) for u in range(width)]
        if any(s is None for s in per_unit):
            continue
        members = tuple((weight, axis, tuple(tuple(per_unit[u][weight, axis]) for u in range(width)))
                        for weight, axis in per_unit[0])
        group = Group(name, members)
        if set(prunable) >= {w for w, _, _ in members} and any(axis == 1 for _, axis, _ in members):
            groups.append(group)
        seen |= {w for w, axis, _ in members if axis == 0}
    return groups


def head_groups(model: nn.Module, prunable: list[str]) -> list[Group]:
    """One group per attention module (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` and a ``heads``
    count, as :class:`sparsebench.data.text.SelfAttention`) whose four matrices are all prunable:
    unit h is head h — its rows of q, k and v and its columns of the output projection."""
    groups = []
    for name, module in model.named_modules():
        projections = [f"{name}.{p}.weight" for p in ("q_proj", "k_proj", "v_proj", "out_proj")]
        if not hasattr(module, "heads") or not set(projections) <= set(prunable):
            continue
        width = module.q_proj.out_features // module.heads
        heads = tuple(tuple(range(h * width, (h + 1) * width)) for h in range(module.heads))
        groups.append(Group(projections[0], tuple((w, int(w.endswith("out_proj.weight")), heads) for w in projections)))
    return groups


def _slices(group, names: dict) -> dict[tuple[str, int], list[int]] | None:
    """A Torch-Pruning group of one unit as {(weight, axis): indices}; None where it touches a layer
    that cannot lose a unit by masking its weight (embedding, LayerNorm, recurrent, ...)."""
    out: dict[tuple[str, int], list[int]] = {}
    for dep, idxs in group:
        module = dep.target.module
        if module not in names or isinstance(module, NORMS):
            continue  # Torch-Pruning's element-wise and reshape ops; BatchNorm entries follow their channel
        if not isinstance(module, UNIT_LAYERS):
            return None
        axis = 0 if dep.handler.__name__ == "prune_out_channels" else 1
        out.setdefault((f"{names[module]}.weight", axis), []).extend(int(i) for i in idxs)
    return out


def unit_scores(group: Group, scores: dict[str, torch.Tensor], members: str = "root") -> torch.Tensor:
    """A score per unit: the sum of ``scores`` over its slice of the root weight (``members="root"``:
    Li et al. 2017's filter norm), or over every member's slice (``"all"``)."""
    total = torch.zeros(group.units, dtype=torch.float64)
    for (name, axis, _), (unit_of, index) in zip(group.members, group.flat):
        if members == "root" and (name != group.root or axis != 0):
            continue
        per_index = scores[name].detach().transpose(0, axis).flatten(1).sum(1).double().cpu()
        total.index_add_(0, unit_of, per_index[index])
    return total


def remove_lowest(score: torch.Tensor, fraction: float) -> torch.Tensor:
    """A boolean over units: the ``round(fraction × units)`` lowest, always keeping one unit."""
    k = min(round(fraction * len(score)), len(score) - 1)
    removed = torch.zeros(len(score), dtype=torch.bool)
    removed[score.argsort(stable=True)[:k]] = True
    return removed


def groups_of(ctx, shared: bool = True) -> list[Group]:
    """The removable groups of a method's model (``shared=False``: only those of one producer)."""
    groups = find_groups(ctx.model, list(ctx.masks), ctx.example(), lambda model, batch: ctx.loss(batch))
    if not groups:
        raise ValueError("this model has no group of units that masking can remove (every group touches an "
                         "embedding, a LayerNorm, a recurrent layer or a weight that is not prunable)")
    return [g for g in groups if shared or not g.shared]


def structured_masks(ctx, scores: dict[str, torch.Tensor], fraction: float, shared: bool = True,
                     members: str = "root") -> dict[str, torch.Tensor]:
    """Weight masks removing, in every group, the ``fraction`` of units of lowest :func:`unit_scores`
    (the current masks kept: a unit pruned before stays pruned)."""
    masks = {n: m.clone() for n, m in ctx.masks.masks.items()}
    for group in groups_of(ctx, shared):
        masks.update(group.masks(remove_lowest(unit_scores(group, scores, members), fraction), masks))
    return masks


def removed_units(group: Group, tensors: dict[str, torch.Tensor]) -> list[int]:
    """The units of ``group`` whose every slice is zero in ``tensors`` (masks or weights)."""
    return [u for u in range(group.units)
            if all(not tensors[name].transpose(0, axis)[list(idx[u])].any() for name, axis, idx in group.members)]


def group_sparsity(groups: list[Group], masks: dict[str, torch.Tensor]) -> float:
    """The fraction of all groups' units whose every slice is zero in ``masks``."""
    total = sum(g.units for g in groups)
    return sum(len(removed_units(g, masks)) for g in groups) / total if total else 0.0


def compact(model: nn.Module, groups: list[Group], example, forward) -> nn.Module:
    """A physically smaller copy of ``model``: every unit whose weights are all zero, removed
    (Torch-Pruning's ``prune()``, which also drops the BatchNorm entries and biases that follow it)."""
    import torch_pruning as tp

    small = copy.deepcopy(model).eval()
    params = dict(small.named_parameters())
    gone = {g.root: removed_units(g, params) for g in groups}
    graph = tp.DependencyGraph().build_dependency(small, example_inputs=example, forward_fn=forward)
    for root, units in gone.items():
        units = units[:-1] if len(units) == small.get_submodule(root.rpartition(".")[0]).weight.shape[0] else units
        if units:
            module = small.get_submodule(root.rpartition(".")[0])
            graph.get_pruning_group(module, graph.get_pruner_of_module(module).prune_out_channels, idxs=units).prune()
    return small


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the ``n`` highest of every ``m`` consecutive scores along the input dimension (a
    conv's inputs in ``weight.view(out, -1)`` order); a trailing run shorter than ``m`` keeps its
    ``ceil(n / m × length)`` highest."""
    rows = scores.flatten(1)
    whole = rows.shape[1] - rows.shape[1] % m
    mask = torch.zeros_like(rows)
    runs = rows[:, :whole].reshape(len(rows), -1, m)
    mask[:, :whole] = torch.zeros_like(runs).scatter_(2, runs.topk(n, dim=2).indices, 1.0).reshape(len(rows), -1)
    if whole < rows.shape[1]:
        tail = rows[:, whole:]
        mask[:, whole:].scatter_(1, tail.topk(-(-n * tail.shape[1] // m), dim=1).indices, 1.0)
    return mask.view_as(scores)


def pattern_violations(weights: dict[str, torch.Tensor], n: int, m: int) -> list[str]:
    """The weights (by name) where a run of ``m`` consecutive inputs (``weight.view(out, -1)``) holds
    more than ``n`` nonzeros (a trailing shorter run: more than ``ceil(n / m × length)``)."""
    broken = []
    for name, w in weights.items():
        rows = (w != 0).flatten(1)
        whole = rows.shape[1] - rows.shape[1] % m
        runs = rows[:, :whole].reshape(len(rows), -1, m).sum(-1)
        if (runs > n).any() or (rows[:, whole:].sum(1) > -(-n * (rows.shape[1] - whole) // m)).any():
            broken.append(name)
    return broken


def check_pattern(n, m) -> None:
    """Raise unless ``n`` of every ``m`` is an N:M pattern (integers, 0 < n < m)."""
    if not (isinstance(n, int) and isinstance(m, int) and 0 < n < m):
        raise ValueError(f"an N:M pattern needs integers 0 < n < m, got n={n!r}, m={m!r}")


def check_pattern_target(sparsity: float, n: int, m: int) -> None:
    """Raise unless ``sparsity`` is the N:M pattern's, 1 − n/m."""
    if abs(sparsity - (1.0 - n / m)) > 1e-9:
        raise ValueError(f"{n}:{m} sparsity is {1.0 - n / m:g}; the target {sparsity:g} cannot be met")
