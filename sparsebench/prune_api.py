"""Prune your own model: ``sparsebench.prune(model, method=..., sparsity=..., calibration=...)``.

Any registered method runs on a model a user brings, through the harness's own machinery (the
method's ``run`` with a :class:`~sparsebench.core.method.Context`, masks held through every step,
sparsity counted from the weights), outside the leaderboard:

- a plain ``torch.nn.Module`` with the user's data: ``calibration=(inputs, targets)`` (or a
  ``TensorSplit``) is what the method may read; the loss is cross-entropy of ``model(inputs)``
  unless ``loss(model, batch)`` is given; prunable: every Linear and Conv weight unless
  ``prunable=[names]``; ``test=(inputs, targets)`` adds its accuracy;
- a Hugging Face model by Hub id or local folder (``transformers``, the ``hf`` extra), of one of two
  kinds, its prunable weights the Linear layers of its blocks (the largest ``ModuleList``: not
  embeddings, norms, the LM head or the classifier, as Wanda, SparseGPT and Sanh et al. prune):
  - a causal LM, evaluated by WikiText-2 perplexity with the protocol of the Wanda and SparseGPT
    papers (locuslab/wanda ``lib/eval.py`` ``eval_ppl_wikitext``; IST-DASLab/sparsegpt
    ``datautils.py``/``opt.py``): the *test* split's rows joined with ``"\\n\\n"``, tokenized once,
    cut into non-overlapping windows of ``seqlen`` tokens (stride = seqlen; default the model's
    ``max_position_embeddings``, 2,048 for OPT and LLaMA), the trailing partial window dropped,
    perplexity = exp(mean over windows of the mean next-token NLL). Calibration: 128 random
    windows of the *train* split (the papers draw 128 from C4, which is not available offline:
    stated in the result). Here WikiText-2 is the data root's tokens version (``wiki.*.tokens``,
    rare words as ``<unk>``), the papers' is ``wikitext-2-raw-v1``: figures are comparable between
    sparsebench runs, not to the papers' tables;
  - a sequence classifier (an encoder fine-tuned on SST-2, with its head), calibrated on GLUE's
    SST-2 train and evaluated by accuracy on its dev split, tokenized by the model's tokenizer.

Without a ``recipe``, only post-training methods run (those with a ``retrain`` field, set to
``"none"``: magnitude, Wanda, SparseGPT, OBD, N:M...): nothing is trained. With
``recipe=Recipe(...)`` any method runs, training on ``calibration`` as its training data.
The model is pruned in place and returned in :class:`Pruned`, whose ``save(folder)`` writes
``model.safetensors`` (``save_pretrained`` for Hugging Face models, with the tokenizer),
``masks.safetensors`` (one uint8 mask per pruned weight) and ``sparsebench.json``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sparsebench.core import registry
from sparsebench.core.masks import default_prunable, sparsity_report
from sparsebench.core.task import Recipe, Task, TensorSplit
from sparsebench.data import data_root as resolve_data_root

CALIBRATION_WINDOWS = 128  # the papers' nsamples
EVAL_WINDOWS = 8  # windows per forward pass in evaluation (the papers' 1: the same figure, faster)


@dataclasses.dataclass
class Pruned:
    """A pruned model, its masks, its sparsity counted from the weights, and what was measured."""

    model: nn.Module
    masks: dict[str, torch.Tensor]
    sparsity: float  # zeros / prunable weights, counted in the final weights
    layers: dict[str, float]  # the same per weight
    method: str
    hparams: dict
    metrics: dict = dataclasses.field(default_factory=dict)
    tokenizer: object = None

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the model (safetensors), its masks and a summary into ``folder``."""
        from safetensors.torch import save_file, save_model

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if hasattr(self.model, "save_pretrained"):
            self.model.save_pretrained(folder, safe_serialization=True)
            if self.tokenizer is not None:
                self.tokenizer.save_pretrained(folder)
        else:
            save_model(self.model, str(folder / "model.safetensors"))
        save_file({n: m.to(torch.uint8).contiguous() for n, m in self.masks.items()}, str(folder / "masks.safetensors"))
        summary = {"method": self.method, "hparams": self.hparams, "sparsity": self.sparsity,
                   "layers": self.layers, "metrics": self.metrics}
        (folder / "sparsebench.json").write_text(json.dumps(summary, indent=1, default=repr))
        return folder


class OwnTask(Task):
    """A task around a model the user brings: its loss, prunable weights and (optional) metric."""

    family, dataset, paper = "user", "the user's data", "-"

    def __init__(self, model: nn.Module, recipe: Recipe, prunable: list[str], loss: Callable | None = None,
                 metric: Callable | None = None):
        self.profile, self.recipe, self.profiles = "own", recipe, {"own": recipe}
        self._model, self._prunable, self._loss, self._metric = model, prunable, loss, metric

    def model(self):
        return self._model

    def prunable(self, model):
        return list(self._prunable)

    def loss(self, model, batch):
        return self._loss(model, batch) if self._loss else super().loss(model, batch)

    def evaluate(self, model, split):
        return self._metric(model, split) if self._metric else super().evaluate(model, split)


def prune(model: nn.Module | str, method: str = "magnitude", sparsity: float = 0.5, calibration=None, *,
          hparams: dict | None = None, recipe: Recipe | None = None, loss: Callable | None = None,
          prunable: list[str] | None = None, test=None, seed: int = 0, seqlen: int | None = None,
          data_root: str | None = None, batch_size: int = 32, evaluate: bool = True) -> Pruned:
    """Prune ``model`` (a module, or a Hugging Face id or folder) with ``method`` to ``sparsity``
    of its prunable weights; see the module docstring for the kinds of model and their data."""
    from sparsebench.running.trial import make_context, make_method, seed_everything

    registry.discover()
    generator = seed_everything(seed)
    tokenizer, metrics = None, {}
    if isinstance(model, (str, os.PathLike)):
        model, tokenizer, kind = load_hf(str(model))
        root = resolve_data_root(data_root)
        if kind == "causal-lm":
            split, test_split, loss, metric, info = causal_lm_data(model, tokenizer, root, calibration, seqlen, generator)
        else:
            split, test_split, loss, metric, info = classifier_data(model, tokenizer, root, calibration)
        metrics.update(info)
        prunable = prunable or block_linears(model)
        batch_size = 1 if kind == "causal-lm" else batch_size
    else:
        split, metric = as_split(calibration), None
        test_split = as_split(test) if test is not None else None
        prunable = prunable or default_prunable(model)
    overrides = dict(hparams or {})
    cls = registry.METHODS.get(method)[0]
    if recipe is None:
        if "retrain" not in getattr(cls, "__dataclass_fields__", {}):
            raise ValueError(f"method {method!r} trains while it prunes: pass recipe=Recipe(...) (and "
                             f"calibration= as its training data), or choose a post-training method")
        overrides.setdefault("retrain", "none")
        recipe = Recipe(batch_size=batch_size, lr=0.0, steps=0, eval_batch_size=batch_size)
    if split is None:
        raise ValueError(f"method {method!r} needs calibration data: calibration=(inputs, targets)")
    chosen = make_method(method, overrides)
    chosen.check_target(sparsity)
    task = OwnTask(model, recipe, prunable, loss, metric)
    model.eval()
    if evaluate and test_split is not None:
        metrics["dense/" + metric_name(metric)] = task.evaluate(model, test_split)
    ctx = make_context(task, split, split, sparsity, generator)
    chosen.run(ctx)
    ctx.masks.apply()
    model.eval()
    params = dict(model.named_parameters())
    achieved, layers = sparsity_report({n: params[n].detach() for n in ctx.masks})
    if evaluate and test_split is not None:
        metrics["pruned/" + metric_name(metric)] = task.evaluate(model, test_split)
    metrics.update(getattr(chosen, "metrics", {}))
    return Pruned(model, ctx.masks.state(), achieved, layers, method, chosen.hparams(), metrics, tokenizer)


def metric_name(metric) -> str:
    return getattr(metric, "metric_name", "accuracy")


def as_split(data) -> TensorSplit | None:
    """The user's data as a split: None, a ``TensorSplit``, or ``(inputs, targets)`` tensors."""
    if data is None or isinstance(data, TensorSplit):
        return data
    inputs, targets = data
    return TensorSplit(torch.as_tensor(inputs), torch.as_tensor(targets))


def block_linears(model: nn.Module) -> list[str]:
    """The Linear weights inside the model's largest ``ModuleList`` (its transformer blocks)."""
    lists = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ValueError("no ModuleList of blocks found: pass prunable=[weight names]")
    name, blocks = max(lists, key=lambda item: sum(p.numel() for p in item[1].parameters()))
    return [f"{name}.{n}.weight" for n, m in blocks.named_modules() if isinstance(m, nn.Linear)]


# --- Hugging Face models and their data ---

def load_hf(source: str):
    """(model in float32, tokenizer, kind) of a Hub id or a local folder: ``causal-lm`` where its
    architecture is a ``...ForCausalLM``/``...LMHeadModel``, else ``classifier``."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(source)
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in (config.architectures or ()))
    auto = transformers.AutoModelForCausalLM if causal else transformers.AutoModelForSequenceClassification
    model = auto.from_pretrained(source, dtype=torch.float32)
    return model, transformers.AutoTokenizer.from_pretrained(source), "causal-lm" if causal else "classifier"


def wikitext2_text(root: Path | None, split: str) -> str:
    """WikiText-2's ``split`` as the papers' loaders see it: the rows of Hugging Face's ``wikitext``
    dataset (each non-empty line with its newline, an empty line as ``""``) joined with ``"\\n\\n"``."""
    name = {"train": "train.txt", "validation": "valid.txt", "test": "test.txt"}[split]
    if root is None or not (root / "wikitext-2" / name).exists():
        raise FileNotFoundError(f"WikiText-2 {split} is read from <data root>/wikitext-2/{name}: set "
                                f"SPARSEBENCH_DATA_ROOT or pass calibration= and evaluate=False")
    lines = (root / "wikitext-2" / name).read_text(encoding="utf-8").split("\n")[:-1]
    return "\n\n".join(line + "\n" if line else "" for line in lines)


def token_windows(ids: torch.Tensor, seqlen: int) -> torch.Tensor:
    """Non-overlapping windows of ``seqlen`` tokens (stride = seqlen), the trailing partial one dropped."""
    n = ids.numel() // seqlen
    if n == 0:
        raise ValueError(f"{ids.numel()} tokens make no window of {seqlen}")
    return ids[:n * seqlen].view(n, seqlen)


def lm_loss(model, batch):
    x = batch[0]
    logits = model(input_ids=x).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1))


@torch.no_grad()
def perplexity(model, split: TensorSplit) -> float:
    """exp of the mean over windows of each window's mean next-token NLL (Wanda's ``eval_ppl_wikitext``)."""
    model.eval()
    nll = [F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), x[:, 1:], reduction="none").mean(1)
           for x, _ in split.batches(EVAL_WINDOWS) for logits in [model(input_ids=x).logits]]
    return math.exp(torch.cat(nll).mean().item())


perplexity.metric_name = "wikitext2_perplexity"


def causal_lm_data(model, tokenizer, root, calibration, seqlen, generator):
    """Calibration windows (128 random ones of WikiText-2 train, or of the user's text or token ids)
    and WikiText-2 test windows, with the protocol's figures."""
    seqlen = seqlen or getattr(model.config, "max_position_embeddings", None) or model.config.n_positions

    def ids_of(text):
        return torch.tensor(tokenizer(text, verbose=False)["input_ids"], dtype=torch.long).flatten()
    if calibration is None:
        source = "wikitext-2 train (the papers: C4)"
        calibration = ids_of(wikitext2_text(root, "train"))
    else:
        source = "the user's"
        calibration = ids_of(calibration) if isinstance(calibration, str) else torch.as_tensor(calibration).flatten()
    windows = token_windows(calibration, seqlen)
    windows = windows[torch.randperm(len(windows), generator=generator)[:CALIBRATION_WINDOWS]]
    test = None
    if root is not None and (root / "wikitext-2" / "test.txt").exists():
        test = token_windows(ids_of(wikitext2_text(root, "test")), seqlen)
        test = TensorSplit(test, test)
    info = {"protocol/seqlen": seqlen, "protocol/stride": seqlen, "protocol/split": "wikitext-2 test",
            "protocol/test_windows": len(test) if test is not None else 0, "calibration/source": source}
    return TensorSplit(windows, windows), test, lm_loss, perplexity, info


def classifier_data(model, tokenizer, root, calibration, max_len: int = 64):
    """GLUE SST-2 (train for calibration unless given as ``(sentences, labels)``; dev for accuracy)
    tokenized by the model's tokenizer."""
    pad = tokenizer.pad_token_id or 0

    def encode(sentences, labels):
        ids = tokenizer(list(sentences), padding="max_length", truncation=True, max_length=max_len,
                        return_tensors="pt")["input_ids"]
        return TensorSplit(ids, torch.as_tensor(labels))

    def rows(name):
        sst2 = sys.modules[registry.TASKS.get("transformer-sst2")[0].__module__]  # GLUE's files, checked
        read = sst2.read_sst2(*sst2.sst2_text(root, name))
        return [" ".join(words) for words, _ in read], [label for _, label in read]
    split = encode(*calibration) if calibration is not None else encode(*rows("train.tsv"))
    test = encode(*rows("dev.tsv")) if root is not None else None

    def loss(model, batch):
        x, y = batch
        return F.cross_entropy(model(input_ids=x, attention_mask=(x != pad).long()).logits, y)

    @torch.no_grad()
    def accuracy(model, split):
        model.eval()
        right = sum((model(input_ids=x, attention_mask=(x != pad).long()).logits.argmax(-1) == y).sum().item()
                    for x, y in split.batches(256))
        return 100.0 * right / len(split)
    accuracy.metric_name = "sst2_dev_accuracy"
    return split, test, loss, accuracy, {"calibration/source": "sst2 train" if calibration is None else "the user's"}
