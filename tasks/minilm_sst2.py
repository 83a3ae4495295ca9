"""A pretrained transformer fine-tuned on SST-2: all-MiniLM-L6-v2 with a classification head.

Model: ``sentence-transformers/all-MiniLM-L6-v2`` (6-layer, 384-wide BERT encoder, 12 heads, FFN
1,536, 22.7 M parameters; its weights verified against their pinned SHA-256 by
``sparsebench.data.pretrained``) with BERT's sequence-classification head (Devlin et al. 2019, as
Hugging Face's ``BertForSequenceClassification``: the pooler, dense + tanh on ``[CLS]``, dropout 0.1
and a new linear classifier). The encoder is a small BERT of our own (:class:`BertClassifier`) that
loads the safetensors names, built from ``sparsebench.data.text.SelfAttention`` so that the harness's
attention-head groups (``sparsebench.library.structures.head_groups``) and FFN-neuron groups
(Torch-Pruning's graph: ``fc1`` rows with ``fc2`` columns) apply unchanged; its output equals
``transformers.BertModel``'s on the same weights (tested).

Tokens: the tokenizer the model ships (``tokenizer.json``: uncased WordPiece, ``[CLS] … [SEP]``,
read by the ``tokenizers`` package), truncated at 64 tokens (SST-2's longest sentence has 57);
``[PAD]`` is id 0 and each batch is cut to its longest sentence.

Data: SST-2 of GLUE as in ``tasks/transformer_sst2.py`` (GLUE's train; the last 872 training rows
held out as validation; reported on ``dev`` as GLUE papers do, since test labels are private).

Prunable: the encoder's linear weights (attention query, key, value and output; the two FFN
matrices), as Sanh et al. 2020 ("Movement Pruning") and Chen et al. 2020 (lottery tickets in BERT)
prune BERT. Not pruned: embeddings, LayerNorms, biases, the pooler dense and the classifier.

Recipe: BERT's fine-tuning (Devlin et al. 2019: AdamW, batch 32, learning rate 5e-5, linear
warm-up, then decay; here 6 % warm-up and cosine decay, weight decay 0.01 on matrices alone), one
epoch. Compared with the published SST-2 dev accuracy of a 6-layer, 384-wide MiniLM,
MiniLM-L6xH384: **91.5 %** (Wang et al. 2020, "MiniLM", NeurIPS; table of github.com/microsoft/unilm,
``minilm/README.md``; several epochs on a GPU). all-MiniLM-L6-v2 starts from the same shape
(``nreimers/MiniLM-L6-H384-uncased``) further trained for sentence embeddings, so it is comparable,
not identical. Measured for scale: a bare Hugging Face loop, one epoch, 89.45 % (README).

Profiles: ``medium`` (the headline: the 66,477 training sentences once, 2,078 steps of 32) and
``quick`` (the first 8,000, 250 steps), both with bfloat16 autocast in the training forward and the
per-epoch validation (weights, optimizer state and the final test in float32), as ResNet-20's
``medium``; evaluation batch 32 (less padding than larger batches, and measured inference at the
batch of fine-tuning). Eager: ``torch.compile`` (dynamic shapes: batches differ in length) trained at
57 sentences/s against eager's 81 after a 75 s compile (one thread, 2-core machine otherwise idle).
At 81 sentences/s ``medium`` fine-tunes in about 14 minutes; where other processes share the cores
33-50 sentences/s were measured (up to 34 minutes). The report after training (validation, test,
structure tracing, measured inference) adds about a minute. ``quick``, dense, seed 0: 83.60 % dev
(87.39 % validation) in 250 s of training on a loaded machine.
"""
from __future__ import annotations

import sys
from functools import lru_cache

import torch
from torch import nn
import torch.nn.functional as F

from sparsebench import Recipe, Splits, Task, TensorSplit, register_task
from sparsebench.core import registry
from sparsebench.data.pretrained import MINILM_L6, load_tokenizer, load_weights
from sparsebench.data.text import SelfAttention

MAX_LEN = 64
# ours -> the safetensors name, per encoder layer
LAYER_NAMES = {"attn.q_proj": "attention.self.query", "attn.k_proj": "attention.self.key",
               "attn.v_proj": "attention.self.value", "attn.out_proj": "attention.output.dense",
               "ln1": "attention.output.LayerNorm", "fc1": "intermediate.dense", "fc2": "output.dense",
               "ln2": "output.LayerNorm"}
PRUNABLE = ("attn.q_proj.weight", "attn.k_proj.weight", "attn.v_proj.weight", "attn.out_proj.weight",
            "fc1.weight", "fc2.weight")


class BertLayer(nn.Module):
    """BERT's post-LayerNorm block: x = LN(x + attn(x)); x = LN(x + dropout(W2 gelu(W1 x)))."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, eps: float):
        super().__init__()
        self.attn = SelfAttention(dim, heads, dropout)
        self.ln1, self.ln2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, allowed):
        x = self.ln1(x + self.attn(x, allowed))
        return self.ln2(x + self.dropout(self.fc2(F.gelu(self.fc1(x)))))


class BertEmbeddings(nn.Module):
    """Word + position + token-type (all type 0) embeddings, LayerNorm, dropout (BERT's names)."""

    def __init__(self, vocab: int, dim: int, positions: int, types: int, dropout: float, eps: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim, padding_idx=0)
        self.position_embeddings, self.token_type_embeddings = nn.Embedding(positions, dim), nn.Embedding(types, dim)
        self.LayerNorm, self.dropout = nn.LayerNorm(dim, eps=eps), nn.Dropout(dropout)

    def forward(self, ids):
        # positions and the type are read from the tables, not looked up: the effective-sparsity trace
        # (``sparsebench.library.connectivity``) sums the rows of every lookup, which would make every
        # position alike and leave attention's queries and keys on no path
        x = self.word_embeddings(ids) + self.position_embeddings.weight[:ids.shape[1]] + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


class BertClassifier(nn.Module):
    """A BERT encoder with BERT's sequence-classification head; input: token ids, 0 = ``[PAD]``."""

    def __init__(self, config: dict, classes: int = 2):
        super().__init__()
        dim, p, eps = config["hidden_size"], config["hidden_dropout_prob"], config["layer_norm_eps"]
        if config.get("hidden_act", "gelu") != "gelu" or config["attention_probs_dropout_prob"] != p:
            raise ValueError("this BERT implements exact GELU and one dropout rate")
        self.embeddings = BertEmbeddings(config["vocab_size"], dim, config["max_position_embeddings"],
                                         config["type_vocab_size"], p, eps)
        self.layers = nn.ModuleList(BertLayer(dim, config["num_attention_heads"], config["intermediate_size"], p, eps)
                                    for _ in range(config["num_hidden_layers"]))
        self.pooler, self.dropout, self.classifier = nn.Linear(dim, dim), nn.Dropout(p), nn.Linear(dim, classes)
        nn.init.normal_(self.classifier.weight, 0.0, config["initializer_range"])  # as BERT initializes it
        nn.init.zeros_(self.classifier.bias)

    def encode(self, ids):
        """The last layer's hidden states of ``ids`` (as ``BertModel``'s ``last_hidden_state``)."""
        allowed = (ids != 0)[:, None, None, :]  # attend to real tokens only
        x = self.embeddings(ids)
        for layer in self.layers:
            x = layer(x, allowed)
        return x

    def forward(self, ids):
        ids = ids[:, :max(1, int((ids != 0).sum(1).max()))]  # cut the batch to its longest sentence
        return self.classifier(self.dropout(torch.tanh(self.pooler(self.encode(ids)[:, 0]))))

    def load_pretrained(self, state: dict) -> None:
        """Copy the encoder and pooler from a BERT state dict (the safetensors names); every
        tensor of this model but the classifier must be found there, with its shape."""
        ours = {f"layers.{i}.{a}.{t}": f"encoder.layer.{i}.{b}.{t}" for i in range(len(self.layers))
                for a, b in LAYER_NAMES.items() for t in ("weight", "bias")}
        ours.update({f"pooler.{t}": f"pooler.dense.{t}" for t in ("weight", "bias")})
        ours.update({n: n for n, _ in self.embeddings.named_parameters(prefix="embeddings")})
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name.startswith("classifier."):
                    continue
                source = state[ours[name]]
                if source.shape != param.shape:
                    raise ValueError(f"{ours[name]}: shape {tuple(source.shape)}, this model's {name} {tuple(param.shape)}")
                param.copy_(source)


@lru_cache(maxsize=1)
def _pretrained():
    import json

    from sparsebench.data.pretrained import pretrained_dir
    return json.loads((pretrained_dir(MINILM_L6) / "config.json").read_text()), load_weights(MINILM_L6)


def minilm_classifier(classes: int = 2) -> BertClassifier:
    """all-MiniLM-L6-v2's encoder and pooler, verified, with a new classifier (seeded by the caller)."""
    config, state = _pretrained()
    model = BertClassifier(config, classes)
    model.load_pretrained(state)
    return model


def tokenize(sentences: list[str], max_len: int = MAX_LEN) -> torch.Tensor:
    """Token ids of ``sentences`` with the model's own tokenizer, right-padded with 0 to ``max_len``."""
    encodings = load_tokenizer(MINILM_L6, max_len=max_len).encode_batch(sentences)
    ids = torch.zeros(len(sentences), max_len, dtype=torch.long)
    for i, e in enumerate(encodings):
        ids[i, :len(e.ids)] = torch.tensor(e.ids)
    return ids


def sst2_reader():
    """The module of ``tasks/transformer_sst2.py``, whose SST-2 reader (GLUE's files, checked) is shared."""
    if "transformer-sst2" not in registry.TASKS.entries:
        registry.discover()
    return sys.modules[registry.TASKS.get("transformer-sst2")[0].__module__]


@lru_cache(maxsize=2)
def load_minilm_sst2(root, max_len: int) -> Splits:
    sst2 = sst2_reader()
    train, dev = (sst2.read_sst2(*sst2.sst2_text(root, name)) for name in ("train.tsv", "dev.tsv"))
    held = sst2.VALIDATION

    def split(rows):
        return TensorSplit(tokenize([" ".join(words) for words, _ in rows], max_len),
                           torch.tensor([label for _, label in rows]))
    return Splits(split(train[:-held]), split(train[-held:]), split(dev), info={"test_split": "dev"})


BERT_FINETUNING = dict(batch_size=32, lr=5e-5, epochs=1, optimizer="adamw", weight_decay=0.01, decay_vectors=False,
                       schedule="cosine", warmup=0.06, eval_batch_size=32, autocast="bfloat16")


@register_task("minilm-sst2")
class MiniLMSST2(Task):
    family = "transformer"
    dataset = "SST-2 (GLUE; test = dev)"
    paper = ("all-MiniLM-L6-v2 (pretrained) fine-tuned as BERT (Devlin et al. 2019); "
             "published MiniLM-L6xH384 SST-2 dev 91.5 (Wang et al. 2020)")
    profiles = {
        "medium": Recipe(**BERT_FINETUNING),
        "quick": Recipe(**BERT_FINETUNING, train_subset=8_000),
    }

    def model(self):
        return minilm_classifier(2)

    def load(self, data_root):
        return load_minilm_sst2(data_root, MAX_LEN)

    def prunable(self, model):
        return [f"layers.{i}.{w}" for i in range(len(model.layers)) for w in PRUNABLE]
