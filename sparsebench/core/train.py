"""The one training loop: the task's recipe, masks held exactly, cost counted, divergence caught.

Every step: backward, then the optional method callback (which sees the dense gradient), then
masked gradients and the optimizer step. With zero gradients, zero weights and zero optimizer
state at masked positions, the optimizers of the recipes (SGD with momentum and weight decay,
Adam, AdamW: each elementwise) leave masked weights at exactly zero, so the weights are
re-masked only where a callback ran (it may touch anything) and at the end of a training. When
masks change, the optimizer state of newly masked weights is cleared, so nothing leaks into
weights regrown later.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import random
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import nn

from sparsebench.core.flops import TRAIN_FORWARD_RATIO, ForwardFlops
from sparsebench.core.masks import Masks
from sparsebench.core.task import Recipe, Split, Task, to_device


class Diverged(RuntimeError):
    """The training loss, a validation metric or a weight became NaN or infinite."""


def nonfinite_state(model: nn.Module) -> str | None:
    """Where ``model``'s state first holds a NaN or an infinity, if anywhere: every floating-point
    tensor of its state dict, parameters (``"weights in <name>"``) and buffers (``"buffer values in
    <name>"``, e.g. BatchNorm's running variance, which makes every output NaN)."""
    params = {n for n, _ in model.named_parameters()}
    with torch.no_grad():
        bad = next((n for n, t in model.state_dict().items()
                    if t.is_floating_point() and not torch.isfinite(t).all()), None)
    return None if bad is None else f"{'weights' if bad in params else 'buffer values'} in {bad}"


@dataclass
class Cost:
    """Training spent in a trial, counted by the harness."""

    steps: int = 0
    examples: int = 0
    flops: float = 0.0        # with the masks in force at each step
    flops_dense: float = 0.0  # the same steps on the dense model


class TrainingCache(Protocol):
    """Where trainings are kept by the key of everything that determines them
    (:mod:`sparsebench.running.checkpoints`)."""

    def get(self, key: str) -> dict | None: ...

    def put(self, key: str, payload: dict) -> None: ...


def make_optimizer(recipe: Recipe, params) -> torch.optim.Optimizer:
    if not recipe.decay_vectors:
        params = list(params)
        params = [{"params": [p for p in params if p.ndim > 1]},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    if recipe.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if recipe.optimizer == "adam" else torch.optim.AdamW
        # fused: one kernel per step; the unfused path's sqrt is 6x slower on the zeros of masked weights
        return cls(params, lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay, fused=True)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")


def lr_factor(recipe: Recipe, step: int, total: int) -> float:
    """Learning-rate multiplier at ``step`` of a training of ``total`` steps."""
    progress = step / max(1, total)
    warm = min(1.0, progress / recipe.warmup) if recipe.warmup else 1.0
    if recipe.schedule == "constant":
        return warm
    if recipe.schedule == "step":
        return warm * recipe.gamma ** sum(progress >= m for m in recipe.milestones)
    if recipe.schedule == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {recipe.schedule!r}")


class Trainer:
    """Trains ``model`` on ``train`` with ``task``'s recipe; logs validation each epoch."""

    def __init__(self, task: Task, model: nn.Module, masks: Masks, train: Split, val: Split,
                 flops: ForwardFlops, generator: torch.Generator, log: Callable[[dict, int], None]):
        self.task, self.model, self.masks = task, model, masks
        self.train_split, self.val_split = train, val
        self.recipe, self.flops, self.generator, self.log = task.recipe, flops, generator, log
        self.device = task.device
        self.steps_per_epoch = train.num_batches(self.recipe.batch_size)
        self.total_steps = self.recipe.total_steps(self.steps_per_epoch)
        self.cost = Cost()
        self.epoch = 0
        self._validated: tuple | None = None  # the last epoch's validation and the state it saw
        self.validation_seconds = 0.0  # wall time of the per-epoch validations (a report, not a cost)
        self.optimizer: torch.optim.Optimizer | None = None
        self._compiled: nn.Module | None = None  # the model as the training steps call it (``_forward``)
        # trainings without a callback are looked up here first; ``identity`` names what the state does
        # not hold (task, version, profile, recipe, the harness's and the task's code)
        self.cache: TrainingCache | None = None
        self.identity = ""
        self._dense_per_example = self._sparse_per_example = flops.per_example()
        masks.on_change(self._masks_changed)

    @property
    def step(self) -> int:
        return self.cost.steps

    def train(self, steps: int, every: int | None = None, callback: Callable[[int], None] | None = None,
              lr_scale: float = 1.0, from_step: int = 0, lr_schedule: bool = True) -> None:
        """Train ``steps`` steps with a fresh optimizer and the recipe's schedule over them, or,
        with ``from_step``, over ``from_step + steps`` resumed at ``from_step`` (rewinding); or, with
        ``lr_schedule=False``, at the recipe's rate times ``lr_scale`` throughout.

        ``callback(i)`` runs at steps ``i`` of this call with ``i % every == 0``, after backward
        (gradients are dense) and before the optimizer step.

        Without a callback, a training is a function of the state it starts from (weights, masks,
        random generators, step and epoch counts) and its arguments: with a ``cache``, one already
        done elsewhere is loaded instead of run, bit for bit, and charged as if run, its per-epoch
        validation logged again.
        """
        self.masks.apply()
        if self.cache is None or callback is not None:
            return self._train(steps, every, callback, lr_scale, from_step, lr_schedule)
        key = self._state_key({"steps": steps, "lr_scale": lr_scale, "from_step": from_step,
                               "lr_schedule": lr_schedule})
        done = self.cache.get(key)
        if done is not None:
            return self._load(done)
        cost, logged, log = dataclasses.replace(self.cost), [], self.log
        self.log = lambda metrics, epoch: (logged.append((metrics, epoch)), log(metrics, epoch))
        try:
            self._train(steps, every, callback, lr_scale, from_step, lr_schedule)
        finally:
            self.log = log
        spent = {f.name: getattr(self.cost, f.name) - getattr(cost, f.name) for f in dataclasses.fields(Cost)}
        self.cache.put(key, {"model": self.model.state_dict(), "generator": self.generator.get_state(),
                             "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
                             "cost": spent, "epoch": self.epoch, "logged": logged})

    def _state_key(self, arguments: dict) -> str:
        digest = hashlib.sha256(json.dumps([self.identity, arguments, self.cost.steps, self.epoch],
                                           sort_keys=True).encode())
        tensors = [*self.model.state_dict().items(), *(("mask." + n, m) for n, m in self.masks.masks.items()),
                   ("generator", self.generator.get_state()), ("torch_rng", torch.get_rng_state())]
        for name, tensor in tensors:
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # 0-d buffers too (BatchNorm's count)
        digest.update(repr(random.getstate()).encode())
        return digest.hexdigest()[:32]

    def _load(self, done: dict) -> None:
        self.model.load_state_dict(done["model"])
        self.generator.set_state(done["generator"])
        torch.set_rng_state(done["torch_rng"])
        random.setstate(done["python_rng"])
        for name, spent in done["cost"].items():
            setattr(self.cost, name, getattr(self.cost, name) + spent)
        self.epoch = done["epoch"]
        self.optimizer = None  # as after a training: the next one starts its own
        for metrics, epoch in done["logged"]:
            self.log(metrics, epoch)
        self.model.train()

    def _train(self, steps, every, callback, lr_scale, from_step, lr_schedule) -> None:
        recipe, model, masks = self.recipe, self.model, self.masks
        self.optimizer = opt = make_optimizer(recipe, model.parameters())
        base_lrs = [g["lr"] * lr_scale for g in opt.param_groups]
        autocast = (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)) if recipe.autocast \
            else contextlib.nullcontext
        move = self.device.type != "cpu"  # to the CPU: nothing to do
        forward = self._forward()
        i, factor = 0, None
        losses = []  # this epoch's mini-batch losses: train/loss is their mean
        while i < steps:
            model.train()
            for batch in self.train_split.batches(recipe.batch_size, shuffle=True, generator=self.generator):
                if i >= steps:
                    break
                now = lr_factor(recipe, from_step + i, from_step + steps) if lr_schedule else 1.0
                if now != factor:  # set only when it changes (a constant or step schedule)
                    factor = now
                    for group, base in zip(opt.param_groups, base_lrs):
                        group["lr"] = base * factor
                if move:
                    batch = to_device(batch, self.device)
                with autocast():
                    try:
                        loss = self.task.loss(forward, batch)
                    except torch._dynamo.exc.BackendCompilerFailed as exc:  # e.g. no C++ compiler
                        warnings.warn(f"torch.compile failed, training in eager mode: {exc}".splitlines()[0])
                        self._compiled, forward = model, model
                        loss = self.task.loss(model, batch)
                if not math.isfinite(value := loss.item()):
                    raise Diverged(f"training loss is {value} at step {self.step}")
                losses.append(value)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                called = callback is not None and every and i % every == 0
                if called:
                    callback(i)
                masks.mask_grads()
                if recipe.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                opt.step()
                if called:
                    masks.apply()
                self._count(self.task.batch_size_of(batch))
                i += 1
                if self.step % self.steps_per_epoch == 0 or i == steps:
                    masks.apply()  # zero already; made certain for what is validated and kept
                    self._end_epoch(sum(losses) / len(losses))
                    losses.clear()
                    model.train()

    def _forward(self) -> nn.Module:
        """The module the training steps call: the model, or with ``Recipe.compile`` the model
        compiled once per model (compiled code of earlier models in this process is dropped)."""
        if not self.recipe.compile:
            return self.model
        if getattr(self._compiled, "_orig_mod", self._compiled) is not self.model:
            torch._dynamo.reset()
            self._compiled = torch.compile(self.model)
        return self._compiled

    def charge(self, examples: int, dense: bool = True) -> None:
        """Count forward and backward passes a method makes outside ``train`` (e.g. scoring)."""
        per_example = self._dense_per_example if dense else self._sparse_per_example
        self.cost.flops += TRAIN_FORWARD_RATIO * per_example * examples
        self.cost.flops_dense += TRAIN_FORWARD_RATIO * self._dense_per_example * examples

    def charge_forward(self, examples: int) -> None:
        """Count forward passes alone over ``examples`` at dense cost (calibration data)."""
        self.cost.flops += self._dense_per_example * examples
        self.cost.flops_dense += self._dense_per_example * examples

    def charge_dense_weight_gradient(self, examples: int) -> None:
        """Count a dense weight gradient in place of a sparse one in this step: f_D - f_S more per
        example (Evci et al. 2020, Appendix H: such a step costs 2 f_S + f_D, a sparse one 3 f_S).
        The dense model's count is unchanged: its step already computes the dense gradient."""
        self.cost.flops += (self._dense_per_example - self._sparse_per_example) * examples

    def one_dense_training_flops(self) -> float:
        """FLOPs of the recipe's dense training, the unit of the leaderboard's cost column: its
        full epochs (an epoch may end on a short batch), then full batches."""
        batch_size = self.recipe.batch_size
        epoch = self.train_split.epoch_examples(batch_size)
        epochs, rest = divmod(self.total_steps, self.steps_per_epoch)
        return TRAIN_FORWARD_RATIO * self._dense_per_example * (epochs * epoch + rest * batch_size)

    def _count(self, examples: int) -> None:
        self.cost.steps += 1
        self.cost.examples += examples
        self.cost.flops += TRAIN_FORWARD_RATIO * self._sparse_per_example * examples
        self.cost.flops_dense += TRAIN_FORWARD_RATIO * self._dense_per_example * examples

    def _end_epoch(self, mean_loss: float) -> None:
        self.epoch += 1
        self.model.eval()
        began = time.perf_counter()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.recipe.autocast is not None):
            val = self.task.evaluate(self.model, self.val_split)  # monitoring: the final evaluations are float32
        self.validation_seconds += time.perf_counter() - began
        bad = nonfinite_state(self.model)
        if bad or not math.isfinite(val):  # NaN outputs can score a finite accuracy: the weights tell
            raise Diverged(f"non-finite {bad}" if bad else
                           f"validation {self.task.metric.name} is {val} after epoch {self.epoch}")
        self.log({"train/loss": mean_loss, f"val/{self.task.metric.name}": val,
                  "train/density": self.masks.density(), "cost/steps": self.cost.steps}, self.epoch)
        self._validated = (val, self._state_versions()) if self.recipe.autocast is None else None

    def _state_versions(self) -> list:
        return [(t, t._version) for t in self.model.state_dict(keep_vars=True).values()]

    def validation(self) -> float | None:
        """The last epoch's validation metric while the model is what it measured (no parameter or
        buffer replaced or changed in place since; in float32), else None."""
        if self._validated is None:
            return None
        val, seen = self._validated
        now = list(self.model.state_dict(keep_vars=True).values())
        same = len(seen) == len(now) and all(a is b and v == b._version for (a, v), b in zip(seen, now))
        return val if same else None

    @torch.no_grad()
    def _masks_changed(self, masks: Masks) -> None:
        densities = {n: m.mean().item() for n, m in masks.masks.items()}
        self._sparse_per_example = self.flops.per_example(densities)
        if self.optimizer is None:
            return
        for name, param in masks.params.items():
            for value in self.optimizer.state.get(param, {}).values():
                if isinstance(value, torch.Tensor) and value.shape == param.shape:
                    value.mul_(masks.masks[name])
