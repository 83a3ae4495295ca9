"""The conformance suite of task plugins: every discovered task declares what the board needs, each
profile is a recipe, and its prunable weights are weight tensors of its model (no data needed)."""
import torch

from sparsebench.core import registry
from sparsebench.core.task import Metric, Recipe


def test_task_declares_what_the_board_needs(task_name):
    cls, _ = registry.TASKS.get(task_name)
    assert cls.family in {"mlp", "cnn", "rnn", "transformer"}, cls.family
    assert isinstance(cls.dataset, str) and cls.dataset and isinstance(cls.paper, str) and cls.paper
    assert isinstance(cls.metric, Metric) and cls.metric.name
    assert cls.profiles and all(isinstance(r, Recipe) for r in cls.profiles.values())
    assert cls.__doc__ or __import__("inspect").getmodule(cls).__doc__, "cite the recipe's source in a docstring"


def test_every_profile_builds_a_model_whose_prunable_weights_are_its_own(task_name):
    cls, defaults = registry.TASKS.get(task_name)
    for profile in cls.profiles:
        task = cls(profile=profile, **defaults)
        torch.manual_seed(0)
        model = task.model()
        params = dict(model.named_parameters())
        prunable = task.prunable(model)
        assert prunable and len(set(prunable)) == len(prunable), (profile, prunable)
        assert all(name in params and params[name].dim() >= 2 for name in prunable), (profile, prunable)
