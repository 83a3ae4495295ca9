"""The objective the layer-wise one-shot methods minimize, measured: each layer's reconstruction error.

``python -m sparsebench.benchmarks.reconstruction --task transformer-shakespeare --profile pretrained``
trains (or loads from the checkpoint cache) the task's dense model for seed 0, draws the calibration
set SparseGPT and ALPS draw, and prints for every prunable layer, at each sparsity, the relative
error ‖X(Ŵ − W)ᵀ‖² / ‖XWᵀ‖² = tr((Ŵ − W) H (Ŵ − W)ᵀ) / tr(W H Wᵀ) of SparseGPT's and ALPS's
reconstruction Ŵ on the dense network's inputs (one pass, no pruned blocks before), and how many of
the layer's input columns each empties. Not a test: it shows where one method's lead comes from.
"""
from __future__ import annotations

import argparse
import importlib

import torch

from sparsebench.core import registry
from sparsebench.library import calibration_data
from sparsebench.library.inputs import as_matrix, blocks, input_covariances, owners
from sparsebench.running.checkpoints import CheckpointStore, identity
from sparsebench.running.trial import make_context, make_task, resolve_data_root, seed_everything


def relative_error(new: torch.Tensor, w: torch.Tensor, h: torch.Tensor) -> float:
    """tr((Ŵ − W) H (Ŵ − W)ᵀ) / tr(W H Wᵀ); H a matrix or the vector of a diagonal one."""
    h = torch.diag(h) if h.dim() == 1 else h
    return float(torch.trace((new - w) @ h @ (new - w).T) / torch.trace(w @ h @ w.T))


def empty_columns(w: torch.Tensor) -> int:
    return int(((w != 0).sum(0) == 0).sum())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="transformer-shakespeare")
    parser.add_argument("--profile", default="pretrained")
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.7, 0.9])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    registry.discover([])
    alps_cls = registry.METHODS.get("alps")[0]
    alps = importlib.import_module(alps_cls.__module__)
    sparsegpt = importlib.import_module(registry.METHODS.get("sparsegpt")[0].__module__)
    task = make_task(args.task, args.profile)
    splits = task.load(resolve_data_root(None))
    ctx = make_context(task, splits.train, splits.val, args.sparsity[0], seed_everything(0))
    ctx._trainer.cache, ctx._trainer.identity = CheckpointStore(None, args.task), identity(task)
    options = alps_cls()
    options.train_dense(ctx)
    calibration = calibration_data.draw(ctx, options.calibration_examples, options.calibration_tokens)
    names = [n for block in blocks(ctx) for n in block]
    hessians, modules = input_covariances(ctx, calibration, names), owners(ctx)
    print(f"{args.task} ({args.profile}), seed 0: relative reconstruction error (empty input columns)")
    print(f"{'sparsity':>8}  {'layer':40s} {'shape':>12}  {'SparseGPT':>16}  {'ALPS':>16}")
    for sparsity in args.sparsity:
        for name in names:
            h, w = hessians[name], as_matrix(modules[name], ctx.masks.params[name].detach()).double()
            ours = alps.prune_layer(w, h, sparsity, options)
            theirs = (sparsegpt.prune_layer(w, h, sparsity) if h.dim() == 2 else
                      sparsegpt.prune_diagonal(w, h, sparsity))
            cells = [f"{relative_error(v, w, h):.4f} ({empty_columns(v):>4})" for v in (theirs, ours)]
            print(f"{sparsity:>8.0%}  {name:40s} {'×'.join(map(str, w.shape)):>12}  {cells[0]:>16}  {cells[1]:>16}")


if __name__ == "__main__":
    main()
