"""Small decoder-only (GPT-style) transformer language models: Tiny Shakespeare (characters) and
WikiText-2 (words).

Model: GPT-2 (Radford et al. 2019) as written in nanoGPT (Karpathy, github.com/karpathy/nanoGPT):
learned token and position embeddings, pre-LayerNorm blocks of causal self-attention and a GELU
MLP (4x wider), a final LayerNorm and an output head tied to the token embedding, GPT-2's
initialization. Attention uses explicit q/k/v/out ``nn.Linear`` layers (``sparsebench.data.text``).

Prunable: the four attention projections and the two MLP weight matrices of every block. Not
pruned: token and position embeddings (and so the tied output head), layer norms and biases,
the usual convention for transformers (Chen et al. 2020, "The Lottery Ticket Hypothesis for
Pre-trained BERT Networks", NeurIPS; Sanh et al. 2020, "Movement Pruning", NeurIPS).

``transformer-shakespeare``: characters of Tiny Shakespeare (Karpathy's char-rnn), vocabulary of
the 65 characters of the whole file, as nanoGPT's ``prepare.py``. Split: nanoGPT's first 90 % for
training; its last 10 % (its validation set) is halved into validation and test. ``full``:
nanoGPT's ``config/train_shakespeare_char.py`` (6 layers, 6 heads, width 384, context 256,
dropout 0.2, no biases, AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1, batch 64, 5,000
iterations, 100 warm-up iterations, gradient clipping 1); reference: best validation loss
1.4697 (nanoGPT README), perplexity 4.35. ``quick``: nanoGPT's README configuration for a CPU
(4 layers, 4 heads, width 128, context 64, batch 12, dropout 0; 2,000 iterations and loss 1.88
there, 1,000 iterations here), evaluated on the first 20,000 characters of the validation and
test splits. ``pretrained`` (a converged model for post-training pruning, trained once and shared
through the checkpoint store): the same CPU model and batch for nanoGPT's 5,000 iterations (100
warm-up), evaluated on the whole validation and test splits.

``transformer-wikitext2``: words of WikiText-2 (Merity et al. 2016, "Pointer Sentinel Mixture
Models"; the files of the PyTorch word-language-model example, ``<eos>`` after every line,
vocabulary of the 33,278 training words). No paper gives a small GPT recipe for it, so we chose
one: the nanoGPT recipe above with the sizes of the PyTorch example's transformer (2 layers,
2 heads, width 200, context 35, batch 20, dropout 0.2, 40 epochs; its MLP is 200 wide, ours 4x
as GPT-2). No published dense reference for this model.
``quick``: a width-64 model, no dropout, 200 iterations (140,000 training tokens), evaluated on
the first 10,000 tokens of the validation and test streams: the 33k-word softmax dominates the
cost on a CPU, so this profile only smoke-tests (perplexity near 1,000). ``pretrained``: width 128, no dropout,
2 epochs (about 40 minutes on one core of this project's 2-core machines), evaluated on the whole
validation and test streams. For scale only (another model): a 2-layer LSTM of width 650 reaches
101.7 validation and 96.3 test perplexity (Merity et al. 2016, Table 2, Zaremba et al.'s medium).

Deviations from nanoGPT, the harness's: windows at fixed positions in shuffled order instead of
random offsets; cosine decay to 0 instead of to 1e-4 (a tenth); weight decay on all parameters,
not only the matrices; perplexity over all windows of a split, each with no context from the
window before it (``sparsebench.data.text``), instead of the mean loss of random batches.
"""
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from sparsebench import Recipe, Splits, register_task
from sparsebench.data import verified_file
from sparsebench.data.text import (LanguageModelTask, LMSplit, TransformerBlock, Vocab, gpt_init, read_words,
                              transformer_prunable)

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_MD5 = "6fb458f1232090904fb40fe944165e91"
WIKITEXT_URL = "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/"
WIKITEXT_MD5 = {"train": "34a77ebe59551b3a3b3d8c0a2797c976", "valid": "d756d22ab2310e7e60c094bea5c5a8eb",
                "test": "781c9418ab9414bd09e4aad825aae752"}


@dataclass(frozen=True)
class GPTConfig:
    layers: int
    heads: int
    dim: int
    context: int
    dropout: float = 0.0
    bias: bool = False


class GPT(nn.Module):
    """Decoder-only transformer; ``forward(tokens, state) -> (logits, None)`` (no recurrent state)."""

    def __init__(self, vocab: int, cfg: GPTConfig):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab, cfg.dim), nn.Embedding(cfg.context, cfg.dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads, 4 * cfg.dim, cfg.dropout, cfg.bias)
                                    for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.dim, bias=cfg.bias)
        self.head = nn.Linear(cfg.dim, vocab, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying (Press & Wolf 2017), as GPT-2
        gpt_init(self, cfg.layers)
        self.register_buffer("causal", torch.ones(cfg.context, cfg.context, dtype=torch.bool).tril(), persistent=False)

    def forward(self, tokens, state=None):
        t = tokens.shape[1]
        x = self.dropout(self.tok_emb(tokens) + self.pos_emb(torch.arange(t, device=tokens.device)))
        for block in self.blocks:
            x = block(x, self.causal[:t, :t])
        return self.head(self.ln_f(x)), None


class GPTTask(LanguageModelTask):
    """A GPT on a token stream; ``configs`` gives the model of each profile."""

    family = "transformer"
    configs: dict[str, GPTConfig]
    vocab_size: int  # of the real data; ``load`` sets the loaded data's

    def model(self):
        return GPT(self.vocab_size, self.configs[self.profile])

    def prunable(self, model):
        return transformer_prunable(model)

    def finish(self, splits: Splits) -> Splits:
        self.vocab_size = splits.info["vocab_size"]  # the class's value for the real files (checked by MD5)
        return Splits(splits.train, self.evaluation_prefix(splits.val), self.evaluation_prefix(splits.test),
                      dict(splits.info))


@lru_cache(maxsize=4)
def load_shakespeare(root, context: int) -> Splits:
    path = verified_file(root, "tinyshakespeare/input.txt", SHAKESPEARE_MD5, [SHAKESPEARE_URL])
    text = path.read_text(encoding="utf-8")
    vocab = Vocab(sorted(set(text)))  # all characters of the file, as nanoGPT
    tokens = vocab.encode(text)
    n90, n95 = int(0.9 * len(tokens)), int(0.95 * len(tokens))
    parts = tokens[:n90], tokens[n90:n95], tokens[n95:]
    return Splits(*(LMSplit(p, context, stateful=False) for p in parts), info={"vocab_size": len(vocab)})


@lru_cache(maxsize=4)
def load_wikitext2(root, context: int) -> Splits:
    words = {s: read_words(verified_file(root, f"wikitext-2/{s}.txt", md5, [f"{WIKITEXT_URL}{s}.txt"]))
             for s, md5 in WIKITEXT_MD5.items()}
    vocab = Vocab(words["train"])
    parts = (LMSplit(vocab.encode(words[s]), context, stateful=False) for s in ("train", "valid", "test"))
    return Splits(*parts, info={"vocab_size": len(vocab)})


NANOGPT = dict(optimizer="adamw", lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, grad_clip=1.0, schedule="cosine")


@register_task("transformer-shakespeare")
class ShakespeareGPT(GPTTask):
    dataset = "Tiny Shakespeare (characters)"
    paper = "nanoGPT shakespeare-char (Karpathy); GPT-2 (Radford et al. 2019)"
    vocab_size = 65
    configs = {"full": GPTConfig(layers=6, heads=6, dim=384, context=256, dropout=0.2),
               "quick": GPTConfig(layers=4, heads=4, dim=128, context=64),
               "pretrained": GPTConfig(layers=4, heads=4, dim=128, context=64)}
    profiles = {
        "full": Recipe(batch_size=64, steps=5000, warmup=100 / 5000, eval_batch_size=64, **NANOGPT),
        "quick": Recipe(batch_size=12, steps=1000, warmup=0.05, eval_batch_size=64, **NANOGPT),
        "pretrained": Recipe(batch_size=12, steps=5000, warmup=100 / 5000, eval_batch_size=64, **NANOGPT),
    }
    eval_tokens = {"quick": 20_000}

    def load(self, data_root):
        return self.finish(load_shakespeare(data_root, self.configs[self.profile].context))


@register_task("transformer-wikitext2")
class WikiText2GPT(GPTTask):
    dataset = "WikiText-2 (words)"
    paper = "our choice: nanoGPT's recipe at the PyTorch word-language-model transformer's size; Merity et al. 2016"
    vocab_size = 33_278
    configs = {"full": GPTConfig(layers=2, heads=2, dim=200, context=35, dropout=0.2),
               "quick": GPTConfig(layers=2, heads=2, dim=64, context=35),
               "pretrained": GPTConfig(layers=2, heads=2, dim=128, context=35)}
    profiles = {
        "full": Recipe(batch_size=20, epochs=40, warmup=0.02, eval_batch_size=20, **NANOGPT),
        "quick": Recipe(batch_size=20, steps=200, warmup=0.05, eval_batch_size=20, train_subset=140_000, **NANOGPT),
        "pretrained": Recipe(batch_size=20, epochs=2, warmup=0.02, eval_batch_size=20, **NANOGPT),
    }
    eval_tokens = {"quick": 10_000}

    def load(self, data_root):
        return self.finish(load_wikitext2(data_root, self.configs[self.profile].context))
