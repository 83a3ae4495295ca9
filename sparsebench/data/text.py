"""Text for sequence tasks: vocabularies, language-model splits and losses, transformer blocks.

Language-model batches follow Zaremba et al. 2014 ("Recurrent Neural Network Regularization";
their code and TensorFlow's ``ptb_iterator``) and the PyTorch word-language-model example: the
token stream is cut into ``batch_size`` contiguous rows, and batch ``t`` is the window
``[t*T, (t+1)*T)`` of every row, with targets shifted by one token (the last window may be
shorter). Consecutive batches are consecutive windows, so a recurrent model carries its state
from one to the next (truncated backpropagation through time). The state belongs to one pass over a split: each
``batches()`` call starts a fresh ``Carry`` (state ``None``), so it is reset at the start of
every epoch, and passes never share it (evaluation, or a method scoring batches while the
trainer trains). A window starts from the state its pass had when the window was first
evaluated, also when it is evaluated again (methods that compute several gradients on one
batch see one loss function).

A ``stateful`` split ignores ``shuffle=True``: shuffling the windows would feed a recurrent
model a state that does not belong to its window. A stateless split (transformers, which see
one window at a time) shuffles the order of the windows and gives each its own empty carry.

A batch is ``(inputs, window, targets)``: inputs first and targets last, as every batch of the
harness, so its size is ``len(targets)``, the number of rows (sequences).

Language models take ``model(tokens, state) -> (logits, state)``; a model without recurrent
state returns ``None``. Perplexity is ``exp`` of the mean negative log-likelihood per predicted
token over the whole split, batched into ``eval_batch_size`` rows. A recipe's ``batch_size``
counts rows (sequences) and its ``train_subset`` tokens.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from sparsebench.core.task import Metric, Task, to_device

EOS = "<eos>"


class Vocab:
    """Tokens to ids: ``specials`` first, then tokens by decreasing count (ties alphabetical)."""

    def __init__(self, tokens: Iterable[str], specials: tuple[str, ...] = (), unknown: str | None = None):
        counts = Counter(tokens)
        rest = sorted((t for t in counts if t not in specials), key=lambda t: (-counts[t], t))
        self.itos = list(specials) + rest
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.unknown = self.stoi[unknown] if unknown is not None else None

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Iterable[str]) -> torch.Tensor:
        if self.unknown is None:
            try:
                return torch.tensor([self.stoi[t] for t in tokens], dtype=torch.long)
            except KeyError as exc:
                raise ValueError(f"token {exc.args[0]!r} is not in the vocabulary") from None
        return torch.tensor([self.stoi.get(t, self.unknown) for t in tokens], dtype=torch.long)


def read_words(path: Path) -> list[str]:
    """Whitespace-separated words with ``<eos>`` after every line, as the PTB and WikiText-2
    language models of Zaremba et al. and the PyTorch example read them."""
    with open(path, encoding="utf-8") as f:
        return [word for line in f for word in line.split() + [EOS]]


class Carry:
    """The recurrent state carried from one window of a pass to the next."""

    state = None


class Window:
    """A batch's place in its pass: its initial state is fixed when it is first evaluated."""

    def __init__(self, carry: Carry):
        self.carry, self.evaluated, self.initial = carry, False, None

    def initial_state(self):
        if not self.evaluated:
            self.initial, self.evaluated = self.carry.state, True
        return self.initial


@dataclass
class LMSplit:
    """A token stream batched into windows of ``seq_len`` tokens (see the module docstring)."""

    tokens: torch.Tensor  # 1-D, token ids
    seq_len: int
    stateful: bool = True

    def __len__(self) -> int:
        return len(self.tokens)

    def rows(self, batch_size: int) -> torch.Tensor:
        width = len(self.tokens) // batch_size
        if width < 2:
            raise ValueError(f"{len(self.tokens)} tokens are too few for {batch_size} rows")
        return self.tokens[:width * batch_size].view(batch_size, width)

    def window_starts(self, batch_size: int) -> range:
        return range(0, self.rows(batch_size).shape[1] - 1, self.seq_len)

    def num_batches(self, batch_size: int) -> int:
        return len(self.window_starts(batch_size))

    def epoch_examples(self, batch_size: int) -> int:
        return self.num_batches(batch_size) * batch_size  # every window holds ``batch_size`` rows

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None):
        data, starts = self.rows(batch_size), self.window_starts(batch_size)
        if shuffle and not self.stateful:
            starts = [starts[i] for i in torch.randperm(len(starts), generator=generator).tolist()]
        carry = Carry()
        for start in starts:
            end = min(start + self.seq_len, data.shape[1] - 1)
            yield data[:, start:end], Window(carry if self.stateful else Carry()), data[:, start + 1:end + 1]

    def subset(self, n: int | None) -> "LMSplit":
        """The first ``n`` tokens."""
        return self if n is None else LMSplit(self.tokens[:n], self.seq_len, self.stateful)


def state_rows(state, rows: slice):
    """The recurrent state of ``rows`` of a batch (LSTM state: (layers, batch, hidden) tensors)."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state[:, rows]
    return type(state)(state_rows(s, rows) for s in state)


def cat_states(states: list):
    """Row states of one batch joined back along the batch axis (inverse of ``state_rows``)."""
    if states[0] is None or isinstance(states[0], torch.Tensor):
        return None if states[0] is None else torch.cat(states, dim=1)
    return type(states[0])(cat_states(list(parts)) for parts in zip(*states))


def detach_state(state):
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return type(state)(detach_state(s) for s in state)


class LanguageModelTask(Task):
    """A task whose model predicts the next token: loss over windows, perplexity over a split.

    ``sum_over_time``: the training loss is the sum over the window's time steps of the batch
    mean (Zaremba et al.'s code), not the mean over all tokens; learning rates and gradient
    clipping of a recipe are meant for that scale. ``eval_tokens`` (per profile) evaluates a
    small profile on a prefix of the validation and test streams.
    """

    metric = Metric("perplexity", higher_is_better=False)
    sum_over_time: ClassVar[bool] = False
    eval_tokens: ClassVar[dict[str, int]] = {}

    def nll(self, model: nn.Module, batch, reduction: str = "mean") -> torch.Tensor:
        """Negative log-likelihood of the batch's targets; carries the state on to the next window."""
        inputs, window, targets = batch
        logits, state = model(inputs, window.initial_state())
        window.carry.state = detach_state(state)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction=reduction)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        loss = self.nll(model, batch)
        return loss * batch[0].shape[1] if self.sum_over_time else loss

    def examples(self, batch):
        """One row (sequence) of the window at a time, each from its own carried state; the
        window's carry moves on as if the batch had been evaluated whole."""
        inputs, window, targets = batch
        state, ends = window.initial_state(), []
        for i in range(len(inputs)):
            carry = Carry()
            carry.state = state_rows(state, slice(i, i + 1))
            yield inputs[i:i + 1], Window(carry), targets[i:i + 1]
            ends.append(carry.state)
        window.carry.state = cat_states(ends)

    def evaluation_prefix(self, split: LMSplit) -> LMSplit:
        return split.subset(self.eval_tokens.get(self.profile))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: LMSplit) -> float:
        total, count = 0.0, 0
        for batch in split.batches(self.recipe.eval_batch_size):
            batch = to_device(batch, self.device)
            total += self.nll(model, batch, reduction="sum").item()
            count += batch[-1].numel()
        return math.exp(total / count)


# --- transformer building blocks, with one nn.Linear per projection (clean FLOPs and masks) ---

class SelfAttention(nn.Module):
    """Multi-head self-attention (Vaswani et al. 2017) with explicit q/k/v/out projections."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dimension {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim, bias=bias) for _ in range(4))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``allowed``: boolean, broadcastable to (batch, heads, query, key); True may attend."""
        b, t, d = x.shape
        q, k, v = (proj(x).view(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        weights = self.dropout(scores.masked_fill(~allowed, float("-inf")).softmax(-1))
        return self.dropout(self.out_proj((weights @ v).transpose(1, 2).reshape(b, t, d)))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block (GPT-2; nanoGPT): x + attn(ln(x)), then x + mlp(ln(x)) with GELU."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim, bias=bias), nn.LayerNorm(dim, bias=bias)
        self.attn = SelfAttention(dim, heads, dropout, bias)
        self.fc1, self.fc2 = nn.Linear(dim, hidden, bias=bias), nn.Linear(hidden, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), allowed)
        return x + self.dropout(self.fc2(F.gelu(self.fc1(self.ln2(x)))))


TRANSFORMER_PRUNABLE = ("attn.q_proj.weight", "attn.k_proj.weight", "attn.v_proj.weight", "attn.out_proj.weight",
                        "fc1.weight", "fc2.weight")


def transformer_prunable(model: nn.Module) -> list[str]:
    """The attention and MLP weight matrices of every ``TransformerBlock``; embeddings, layer
    norms, biases and output heads are not pruned (the convention of Chen et al. 2020 and Sanh
    et al. 2020 for BERT)."""
    return [f"{name}.{w}" for name, m in model.named_modules() if isinstance(m, TransformerBlock)
            for w in TRANSFORMER_PRUNABLE]


def gpt_init(model: nn.Module, layers: int) -> None:
    """GPT-2's initialization as in nanoGPT: N(0, 0.02) weights, zero biases, and the residual
    projections (attention output, second MLP layer) at 0.02 / sqrt(2 * layers)."""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(p)
        elif p.dim() >= 2:
            residual = name.endswith(("out_proj.weight", "fc2.weight"))
            nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers) if residual else 0.02)
