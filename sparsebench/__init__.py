"""sparsebench: pruning and sparse-training methods compared under one harness."""
from .masks import Masks, layer_densities, top_k_masks
from .method import Context, Method
from .registry import register_method, register_task
from .scores import magnitude_scores
from .task import Metric, Recipe, Splits, Task, TensorSplit

__version__ = "0.1.0"

__all__ = ["Context", "Masks", "Method", "Metric", "Recipe", "Splits", "Task", "TensorSplit",
           "layer_densities", "magnitude_scores", "register_method", "register_task", "top_k_masks"]
