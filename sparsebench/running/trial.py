"""One trial: task x profile x method x sparsity x seed, from names to a verified result.

A trial is a pure function of its spec and code: seeded, its config hashed into an id. The
method runs on training data only; then the harness counts zeros in the weights, evaluates the
test split once, and reports the training the method spent. A method that raises or a loss
that diverges makes a failed result with its reason; nothing escapes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from sparsebench.core import registry
from sparsebench.running import records
from sparsebench.data import data_root as resolve_data_root
from sparsebench.core import inference
from sparsebench.core.flops import count_forward_flops
from sparsebench.core.masks import Masks, check_sparsity, sparsity_report
from sparsebench.core.hparams import check_hparams, schema
from sparsebench.core.method import Context, Method
from sparsebench.core.task import Split, Task, to_device
from sparsebench.core.train import Diverged, Trainer, TrainingCache, nonfinite_state
from sparsebench.library import structures
from sparsebench.library.connectivity import Connectivity, connectivity

# A method with exact sparsity may keep more weights than its budget by rounding only. Counted
# from the weights, sparsity can also exceed the target where kept weights are exactly zero (RigL
# growing where the gradient is zero, e.g. rows of rare tokens in an embedding): not a failure, as
# the method only handicaps itself; the leaderboard shows the sparsity achieved.
SPARSITY_TOLERANCE = 0.005
MAX_TIMED_BATCH = 256  # examples of the largest batch timed: measuring stays seconds of a quick trial
TRACKS = ("default", "tuning", "tuned", "one-shot")


def retrains_nothing(method: str, hparams: dict) -> bool:
    """Whether ``method`` (with ``hparams``) prunes a trained network once and does not train it again."""
    from sparsebench.library.posttraining import PruneAfterTraining

    cls, defaults = registry.METHODS.get(method)
    return issubclass(cls, PruneAfterTraining) and {**defaults, **hparams}.get("retrain", cls.retrain) == "none"


@dataclass(frozen=True)
class TrialSpec:
    task: str
    method: str
    sparsity: float
    seed: int = 0
    profile: str = "quick"
    hparams: dict = field(default_factory=dict)  # overrides of the method's registered defaults
    # the result's track: "default" (the paper's hyperparameters or the given overrides), "tuning" (a
    # configuration of a search: evaluated on validation only, never on test) or "tuned" (a study's
    # choice, named by ``study``, run on a reported seed) or "one-shot" (post-training pruning without
    # retraining, ranked among its kind beside the default track's dense model)
    track: str = "default"
    study: str = ""

    def __post_init__(self):
        object.__setattr__(self, "sparsity", check_sparsity(self.sparsity))
        if self.track not in TRACKS:
            raise ValueError(f"unknown track {self.track!r}; choose one of {', '.join(TRACKS)}")
        if (self.track == "tuned") != bool(self.study):
            raise ValueError("a tuned trial names its study, and only a tuned trial does")
        if self.track == "one-shot" and not retrains_nothing(self.method, self.hparams):
            raise ValueError(f"the one-shot track holds post-training pruning without retraining; {self.method!r} "
                             f"with {self.hparams or 'its defaults'} trains after pruning or is not post-training")

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        for name, default in (("track", "default"), ("study", "")):  # default-track ids do not change
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "TrialSpec":
        return cls(**data)

    @property
    def run_name(self) -> str:
        return f"{self.method}-s{self.sparsity:.2f}-seed{self.seed}"

    def config_id(self) -> str:
        """Hash of what determines the result: names, plugin versions, overrides, sparsity, seed."""
        return config_hash(self.to_json(), registry.METHODS.version(self.method),
                           registry.TASKS.version(self.task, self.profile))


def config_hash(spec: dict, method_version: str, task_version: str) -> str:
    """The config id of a spec (``TrialSpec.to_json()``) under the given plugin versions."""
    key = {**spec, "method_version": method_version, "task_version": task_version}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def plan(tasks, methods, sparsities, seeds, profile="quick", hparams=None, track="default") -> list[TrialSpec]:
    """The grid of trials; the dense reference runs once per seed, at sparsity 0, on the default
    track (the reference of every track)."""
    sparsities = [check_sparsity(s) for s in sparsities]
    specs = []
    for task, method, seed in itertools.product(tasks, methods, seeds):
        cls, _ = registry.METHODS.get(method)
        levels = sparsities if cls.prunes else [0.0]
        for s in levels:
            if cls.prunes and float(s) == 0.0:
                continue
            specs.append(TrialSpec(task, method, s, seed, profile, dict(hparams or {}),
                                   track=track if cls.prunes else "default"))
    return list({spec.config_id(): spec for spec in specs}.values())


def make_method(name: str, overrides: dict | None = None) -> Method:
    cls, defaults = registry.METHODS.get(name)
    return cls(**check_hparams(name, schema(cls), {**defaults, **(overrides or {})}))


def make_task(name: str, profile: str) -> Task:
    cls, defaults = registry.TASKS.get(name)
    return cls(profile=profile, **defaults)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def make_context(task: Task, train: Split, val: Split, sparsity: float, generator: torch.Generator,
                 log: Callable[[dict, int], None] = lambda metrics, step: None) -> Context:
    """A new model of ``task``, its masks, FLOP counts and trainer: what a method is given."""
    model = task.model().to(task.device)
    masks = Masks(model, task.prunable(model))
    example = to_device(next(iter(train.batches(task.recipe.batch_size))), task.device)
    flops = count_forward_flops(model, list(masks), lambda: task.loss(model, example), task.batch_size_of(example))
    return Context(model, masks, sparsity, Trainer(task, model, masks, train, val, flops, generator, log))


def run_trial(spec: TrialSpec, data_root: Path | None = None,
              log: Callable[[dict, int], None] = lambda metrics, step: None,
              device: str = "cpu", checkpoints: TrainingCache | None = None) -> dict:
    """Run one trial and return its result: ``status``, ``reason``, ``metrics``, ``layers``.
    With ``checkpoints`` (:mod:`sparsebench.running.checkpoints`), trainings done before are reused."""
    task = make_task(spec.task, spec.profile)
    method = make_method(spec.method, spec.hparams)
    task.device = torch.device(device)
    splits = task.load(resolve_data_root(data_root))
    train_split = splits.train.subset(task.recipe.train_subset) if hasattr(splits.train, "subset") else splits.train
    ctx = make_context(task, train_split, splits.val, spec.sparsity, seed_everything(spec.seed), log)
    model, masks, trainer, flops = ctx.model, ctx.masks, ctx._trainer, ctx._trainer.flops
    if checkpoints is not None:
        from sparsebench.running.checkpoints import identity
        trainer.cache, trainer.identity = checkpoints, identity(task)
    result = {"status": "completed", "reason": "", "collapse": "", "info": {**splits.info, **system(task)},
              "hparams": method.hparams(), "metrics": {}, "layers": {}}
    began = time.perf_counter()
    try:
        method.run(ctx)
    except Diverged as exc:
        return _failed(result, f"diverged: {exc}")
    except Exception as exc:
        return _failed(result, f"method {spec.method!r} raised {type(exc).__name__}: {exc}",
                       traceback.format_exc())

    trained = time.perf_counter()
    # the last epoch's validation stands for the final one if nothing changed since (a pass saved)
    validated = trainer.validation() if masks.held() else None
    masks.apply()
    if bad := nonfinite_state(model):  # before counting zeros (a NaN is not one); buffers too: a model
        return _failed(result, f"diverged: non-finite {bad}")  # with a NaN running variance scores chance
    weights = {n: p.detach() for n, p in masks.params.items()}
    achieved, per_layer = sparsity_report(weights)
    paths = trace_connectivity(task, model, masks, train_split)
    model.eval()
    val = validated if validated is not None else task.evaluate(model, splits.val)
    metric = val if spec.track == "tuning" else task.evaluate(model, splits.test)  # tuning never sees test
    densities = {n: 1.0 - s for n, s in per_layer.items()}
    total_params = sum(p.numel() for p in model.parameters())
    zeros = sum(int((p == 0).sum()) for p in weights.values())
    m = task.metric.name
    result["metrics"] = {
        **({} if spec.track == "tuning" else {f"final/test_{m}": metric}),
        f"final/val_{m}": val,
        "final/sparsity": achieved,
        "final/effective_sparsity": paths.effective_sparsity,
        "collapse/dead_layers": len(paths.dead_layers),
        "collapse/dead_outputs": paths.dead_outputs,
        "final/sparsity_target": spec.sparsity,
        "cost/train_steps": trainer.cost.steps,
        "cost/train_flops": trainer.cost.flops,
        "cost/train_flops_dense": trainer.cost.flops_dense,
        "cost/train_cost_rel": trainer.cost.flops / trainer.one_dense_training_flops(),
        "cost/train_steps_rel": trainer.cost.steps / trainer.total_steps,
        "inference/flops_dense": flops.per_example(),
        "inference/flops_sparse": flops.per_example(densities),
        "inference/flops_rel": flops.per_example(densities) / flops.per_example(),
        "params/total": total_params,
        "params/prunable": sum(p.numel() for p in weights.values()),
        "params/nonzero": total_params - zeros,
    }
    result["collapse"] = paths.describe()
    result["layers"] = {n: {"shape": list(p.shape), "params": p.numel(), "density": densities[n],
                            "effective_density": float(paths.effective[n].float().mean()),
                            "dead_units": paths.dead_units[n]}
                        for n, p in weights.items()}
    if not torch.isfinite(torch.tensor(metric)):
        return _failed(result, f"diverged: {'validation' if spec.track == 'tuning' else 'test'} {m} is {metric}")
    if method.exact_sparsity and achieved < spec.sparsity - SPARSITY_TOLERANCE:
        return _failed(result, f"method {spec.method!r} reached sparsity {achieved:.4f}, target {spec.sparsity}")
    if method.structure == "n:m" and (broken := structures.pattern_violations(weights, method.n, method.m)):
        return _failed(result, f"method {spec.method!r} broke its {method.n}:{method.m} pattern in {', '.join(broken)}")
    groups = unit_groups(task, model, masks, train_split)
    units_removed = structures.group_sparsity(groups, masks.masks) if groups else 0.0
    if groups:
        result["metrics"]["final/group_sparsity"] = units_removed
    chance = chance_level(task, train_split, splits.test)
    if chance is not None:
        result["metrics"]["final/chance"] = chance
    measured, form = measure_inference(task, model, masks, splits.val, groups if units_removed > 0 else [])
    result["metrics"].update(measured)
    result["info"]["inference_form"] = form
    result["metrics"].update(getattr(method, "metrics", {}))  # what the method drew (calibration/examples, ...)
    # where the trial's time went: the method (its trainings, their validations among them), the report
    result["metrics"].update({"time/method_seconds": trained - began,
                              "time/validation_seconds": trainer.validation_seconds,
                              "time/report_seconds": time.perf_counter() - trained})
    return result


def chance_level(task: Task, train: Split, test: Split) -> float | None:
    """The test metric of a model that learned nothing from its inputs: for accuracy, always the
    majority class of the training split; for perplexity, the training split's unigram distribution
    (add-one smoothed over the vocabulary). None for other metrics and splits."""
    name = task.metric.name
    if name == "accuracy" and hasattr(train, "targets") and hasattr(test, "targets"):
        majority = torch.bincount(train.targets.flatten()).argmax()
        return float((test.targets == majority).double().mean() * 100)
    if name == "perplexity" and hasattr(train, "tokens") and hasattr(test, "tokens"):
        vocab = int(max(train.tokens.max(), test.tokens.max())) + 1
        counts = torch.bincount(train.tokens, minlength=vocab).double() + 1.0
        return float(torch.exp(-(counts / counts.sum()).log()[test.tokens].mean()))
    return None


_GROUPS: dict[tuple, list] = {}  # traced unit groups by model structure: the same for every trial of a task


def unit_groups(task: Task, model, masks: Masks, train: Split) -> list:
    """The model's removable units (:mod:`sparsebench.library.structures`), or none where its
    structure cannot be traced (recurrent layers, say). Traced once per process for each structure
    (the task, its modules and their parameters' shapes): tracing a transformer takes seconds."""
    key = (type(task), task.profile, str(task.device), tuple(masks),
           tuple((n, type(m).__qualname__) for n, m in model.named_modules()),
           tuple((n, tuple(p.shape)) for n, p in model.named_parameters()))
    if key not in _GROUPS:
        try:
            example = to_device(next(iter(train.batches(2))), task.device)
            _GROUPS[key] = structures.find_groups(model, list(masks), example, task.loss)
        except Exception:  # tracing is a report, never a reason for a trial to fail
            _GROUPS[key] = []
    return _GROUPS[key]


def measure_inference(task: Task, model, masks: Masks, val: Split, groups: list) -> tuple[dict, str]:
    """The final model's measured latency, speedup and size (:mod:`sparsebench.core.inference`) on
    validation batches of 1 and of the evaluation batch size (at most ``MAX_TIMED_BATCH``), with
    the compacted model among the forms where ``groups`` (those with a unit wholly zero) are given;
    not charged to the method."""
    batches = {"b1": 1, "bN": min(task.recipe.eval_batch_size, MAX_TIMED_BATCH)}
    batches = {k: to_device(next(iter(val.batches(n))), task.device) for k, n in batches.items()}
    forms = {}
    if groups:  # some unit is wholly zero
        try:  # a module whose forward assumes its width (attention's head size) cannot be compacted
            small = structures.compact(model, groups, batches["bN"], task.loss)
            with torch.no_grad():  # the model is in eval mode since its evaluation
                if torch.allclose(task.loss(small, batches["bN"]), task.loss(model, batches["bN"]), rtol=1e-4,
                                  atol=1e-5):
                    forms["compact"] = small
        except Exception:
            pass
    return inference.measure(model, masks, task.loss, batches, forms)


def system(task: Task) -> dict[str, str]:
    """What a trial ran on, for the board's system card: processor, torch threads, device, versions."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = records.cpu_name()
    device = str(task.device)
    if task.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(task.device)})"
    versions = [f"torch {torch.__version__}"]
    for package in ("ray", "mlflow"):  # a trial run without them (``sparsebench run --bundle``) says so
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            versions.append(f"no {package}")
    return {"cpu": cpu, "threads": str(torch.get_num_threads()), "device": device, "versions": ", ".join(versions)}


def trace_connectivity(task: Task, model, masks: Masks, train: Split) -> Connectivity:
    """Effective sparsity and collapse of the final weights (:mod:`sparsebench.library.connectivity`),
    on the path graph of the model (one input shaped like a training example); not charged to the method."""
    x, *_ = to_device(next(iter(train.batches(1))), task.device)
    return connectivity(model, list(masks), x)


def _failed(result: dict, reason: str, details: str = "") -> dict:
    return {**result, "status": "failed", "reason": reason, "traceback": details}
