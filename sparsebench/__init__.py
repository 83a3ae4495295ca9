"""sparsebench: pruning and sparse-training methods compared under one harness."""
from sparsebench.core.masks import Masks, layer_densities, top_k_masks
from sparsebench.core.method import Context, Method
from sparsebench.core import registry
from sparsebench.core.registry import register_method, register_task
from sparsebench.core.space import Choice, Integer, Uniform
from sparsebench.library.scores import magnitude_scores
from sparsebench.core.task import Metric, Recipe, Splits, Task, TensorSplit

__version__ = "0.1.0"

__all__ = ["Choice", "Context", "Integer", "Uniform", "Masks", "Method", "Metric", "Recipe", "Splits", "Task", "TensorSplit",
           "layer_densities", "magnitude_scores", "register_method", "register_task", "top_k_masks"]
