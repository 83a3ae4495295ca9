"""Methods that fail on purpose: each failure must become a recorded result, not a crash."""
import os
from dataclasses import dataclass

import torch

from sparsebench import Method, Uniform, register_method


@register_method("test-raises")
@dataclass
class Raises(Method):
    when, criterion, paper = "init", "none", "—"

    def run(self, ctx):
        raise RuntimeError("boom from a plugin")


@register_method("test-diverges")
@dataclass
class Diverges(Method):
    when, criterion, paper = "init", "none", "—"

    def run(self, ctx):
        with torch.no_grad():
            for p in ctx.model.parameters():
                p.fill_(float("nan"))
        ctx.train()


@register_method("test-kills-worker")
@dataclass
class KillsWorker(Method):
    when, criterion, paper = "init", "none", "—"

    def run(self, ctx):
        os._exit(3)


@register_method("test-wrong-sparsity")
@dataclass
class WrongSparsity(Method):
    when, criterion, paper = "init", "none", "—"

    def run(self, ctx):
        ctx.masks.prune({n: torch.rand(p.shape) for n, p in ctx.masks.params.items()}, ctx.sparsity / 2)
        ctx.train(steps=2)


@register_method("test-tunable")
@dataclass
class Tunable(Method):
    """A search space where part of the range raises: a failed configuration must not stop a search."""
    when, criterion, paper = "init", "random", "—"
    fail_above: float = 0.5
    x: float = 0.1
    search_space = {"x": Uniform(0.0, 1.0)}

    def run(self, ctx):
        if self.x > self.fail_above:
            raise ValueError(f"x = {self.x} is out of this method's depth")
        ctx.masks.prune({n: torch.rand(p.shape) for n, p in ctx.masks.params.items()}, ctx.sparsity)
        ctx.train()


@register_method("test-slow")
@dataclass
class Slow(Method):
    """Takes its time, so that a test can interrupt a sweep while it runs."""
    when, criterion, paper = "init", "random", "—"
    seconds: float = 4.0

    def run(self, ctx):
        import time

        time.sleep(self.seconds)
        ctx.masks.prune({n: torch.rand(p.shape) for n, p in ctx.masks.params.items()}, ctx.sparsity)
        ctx.train(steps=2)


@register_method("test-nan-weights-learned")
@register_method("test-nan-weights-exact", exact=True)
@dataclass
class NaNWeights(Method):
    """Trains, then leaves NaN in the last weight matrix (as a learned-sparsity method might)."""
    when, criterion, paper = "during", "none", "—"
    exact: bool = False

    @property
    def exact_sparsity(self):
        return self.exact

    def run(self, ctx):
        ctx.masks.prune({n: torch.rand(p.shape) for n, p in ctx.masks.params.items()}, ctx.sparsity)
        ctx.train(steps=2)
        with torch.no_grad():
            list(ctx.masks.params.values())[-1].fill_(float("nan"))
