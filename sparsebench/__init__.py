"""sparsebench: pruning and sparse-training methods compared under one harness.

The plugin API is imported on first use (``from sparsebench import Method``), so that commands
which need no torch (``--help``, ``list`` from its catalog, argument errors) start in well under a second.
"""
import importlib

__version__ = "0.1.0"

_API = {"Masks": "sparsebench.core.masks", "layer_densities": "sparsebench.core.masks",
        "top_k_masks": "sparsebench.core.masks", "Context": "sparsebench.core.method",
        "Method": "sparsebench.core.method", "register_method": "sparsebench.core.registry",
        "register_task": "sparsebench.core.registry", "Choice": "sparsebench.core.space",
        "Integer": "sparsebench.core.space", "Uniform": "sparsebench.core.space",
        "magnitude_scores": "sparsebench.library.scores", "Metric": "sparsebench.core.task",
        "Recipe": "sparsebench.core.task", "Splits": "sparsebench.core.task", "Task": "sparsebench.core.task",
        "TensorSplit": "sparsebench.core.task",
        # prune your own model (sparsebench.prune(model, method=..., sparsity=..., calibration=...))
        "prune": "sparsebench.prune_api", "Pruned": "sparsebench.prune_api"}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name == "registry":
        return importlib.import_module("sparsebench.core.registry")
    if name not in _API:
        raise AttributeError(f"module 'sparsebench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value
