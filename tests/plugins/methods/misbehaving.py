"""Methods that fail on purpose: each failure must become a recorded result, not a crash."""
import os
from dataclasses import dataclass

import torch

from sparsebench import Method, register_method


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
