"""A small transformer encoder trained from scratch to classify sentiment on SST-2 (GLUE).

Data: SST-2 of GLUE (Socher et al. 2013, "Recursive Deep Models for Semantic Compositionality
Over a Sentiment Treebank"; Wang et al. 2019, "GLUE", ICLR), ``train.tsv`` (67,349 labelled
phrases) and ``dev.tsv`` (872 sentences). GLUE's test labels are private, so, as GLUE papers do,
the benchmark reports on ``dev``: it is the test split here, and the last 872 rows of
``train.tsv`` are held out as the validation split. No checksum of the tsv files is published: the
loader checks their header, labels and row counts, and files found in the data root against the
sizes and SHA-256 of the copy this benchmark was run on (``FILES``: a ``dev.tsv`` with its labels
flipped is refused). Users without the files get GLUE's ``SST-2.zip`` (checked against the MD5
torchtext uses), unpacked in the cache with a digest of each unpacked file recorded, checked on
every read, and unpacked again from the verified archive where it does not match
(``sparsebench.data.extracted``).

Tokens: lower-cased words split on whitespace (the files are tokenized already), a vocabulary of
every word of the training rows (validation rows excluded), ``<pad>`` and ``<unk>``; sentences
cut at 64 tokens. No pre-trained embeddings or tokenizers (none can be downloaded here).

Model: embeddings of tokens and positions, pre-LayerNorm transformer encoder blocks
(``sparsebench.data.text``: explicit q/k/v/out projections, GELU MLP 4x wider), a final LayerNorm,
the mean over the sentence's tokens and a linear classifier; GPT-2's initialization. Each batch
is cut to its longest sentence, so FLOPs are counted on the first training batch's length.
Prunable: attention and MLP weight matrices; not embeddings, layer norms, biases or the
classifier (Chen et al. 2020, "The Lottery Ticket Hypothesis for Pre-trained BERT Networks";
Sanh et al. 2020, "Movement Pruning").

Recipe: no paper trains this small encoder from scratch on SST-2, so it is our choice: the
shape of BERT's fine-tuning recipe (Devlin et al. 2019: Adam with weight decay, batch 32, linear
warm-up over 10 % of training, then decay; here cosine) with a from-scratch learning rate of
5e-4, dropout 0.1 and 10 epochs. No published dense reference exists for it; ``quick`` trains one
epoch on the first 40,000 training phrases.
"""
import csv
import hashlib
import io
import zipfile
from functools import lru_cache

import torch
from torch import nn

from sparsebench import Recipe, Splits, Task, TensorSplit, register_task
from sparsebench.data import DataError, cache_dir, extracted, verified_file
from sparsebench.data.text import TransformerBlock, Vocab, gpt_init, transformer_prunable

GLUE_URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
GLUE_MD5 = "9f81648d4199384278b86e315dac217c"  # of the archive, as torchtext's SST2 checks it
ROWS = {"train.tsv": 67_349, "dev.tsv": 872}  # GLUE's counts
# size and SHA-256 of the files of the copy this benchmark's results were run on (the offline
# machines' shared data, from GLUE): a file of the data root is checked against them when read
FILES = {"train.tsv": (3_806_081, "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1"),
         "dev.tsv": (94_931, "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"),
         "test.tsv": (197_335, "69a938605609b3e6663b4487918fe1565eb293734e6e520d0366d1d412fd2a13")}
VALIDATION = 872
PAD, UNK = "<pad>", "<unk>"


def sst2_text(root, name: str):
    """Path and text of ``sst2/<name>``: from the data root (checked against ``FILES``), else
    unpacked from GLUE's ``SST-2.zip`` into the cache and checked there on every read (repaired if
    it does not match)."""
    if root is not None and (root / "sst2" / name).exists():
        path = root / "sst2" / name
        blob = path.read_bytes()
        size, sha256 = FILES[name]
        if len(blob) != size or (actual := hashlib.sha256(blob).hexdigest()) != sha256:
            raise DataError(f"{path} is not GLUE's SST-2 {name}: {len(blob):,} bytes"
                            + (f", SHA-256 {actual}" if len(blob) == size else "")
                            + f"; expected {size:,} bytes, SHA-256 {sha256}. Put GLUE's file there, or take the "
                            f"tsv files out of {path.parent} and put GLUE's SST-2.zip there (or let it be downloaded: "
                            f"{GLUE_URL}), which is checked against its MD5")
        return path, blob.decode("utf-8")

    def unpack() -> bytes:
        archive = verified_file(root, "sst2/SST-2.zip", GLUE_MD5, [GLUE_URL])
        with zipfile.ZipFile(archive) as z:
            return z.read(f"SST-2/{name}")
    path = cache_dir("sst2") / name
    return path, extracted(path, unpack, "sst2/SST-2.zip", GLUE_MD5).decode("utf-8")


def sst2_file(root, name: str):
    """Path of ``sst2/<name>`` (see ``sst2_text``)."""
    return sst2_text(root, name)[0]


def read_sst2(path, text: str | None = None) -> list[tuple[list[str], int]]:
    """(words, label) rows of a labelled GLUE SST-2 file (its ``text`` if given, read already),
    checked for format and row count."""
    if text is None:
        text = path.read_bytes().decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    if rows[0] != ["sentence", "label"] or any(len(r) != 2 or r[1] not in ("0", "1") for r in rows[1:]):
        raise DataError(f"{path} is not a labelled GLUE SST-2 file (header 'sentence<TAB>label', labels 0/1)")
    if len(rows) - 1 != ROWS[path.name]:
        raise DataError(f"{path} has {len(rows) - 1} rows, GLUE's SST-2 {ROWS[path.name]}")
    return [(sentence.lower().split(), int(label)) for sentence, label in rows[1:]]


def encode(rows, vocab: Vocab, max_len: int) -> TensorSplit:
    ids = torch.full((len(rows), max_len), vocab.stoi[PAD], dtype=torch.long)
    for i, (words, _) in enumerate(rows):
        tokens = vocab.encode(words[:max_len])
        ids[i, :len(tokens)] = tokens
    return TensorSplit(ids, torch.tensor([label for _, label in rows]))


@lru_cache(maxsize=4)
def load_sst2(root, max_len: int) -> Splits:
    train, dev = (read_sst2(*sst2_text(root, name)) for name in ("train.tsv", "dev.tsv"))
    train, val = train[:-VALIDATION], train[-VALIDATION:]
    vocab = Vocab((w for words, _ in train for w in words), specials=(PAD, UNK), unknown=UNK)
    return Splits(encode(train, vocab, max_len), encode(val, vocab, max_len), encode(dev, vocab, max_len),
                  info={"vocab_size": len(vocab), "test_split": "dev"})


class TransformerClassifier(nn.Module):
    """Encoder blocks over token + position embeddings, mean-pooled, then a linear classifier.
    Token id 0 is padding."""

    def __init__(self, vocab: int, classes: int, layers: int, heads: int, dim: int, max_len: int, dropout: float):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab, dim), nn.Embedding(max_len, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, 4 * dim, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, classes)
        gpt_init(self, layers)

    def forward(self, tokens):
        tokens = tokens[:, :max(1, int((tokens != 0).sum(1).max()))]  # cut the batch to its longest sentence
        keep = tokens != 0
        x = self.dropout(self.tok_emb(tokens) + self.pos_emb(torch.arange(tokens.shape[1], device=tokens.device)))
        allowed = keep[:, None, None, :]  # attend to real tokens only
        for block in self.blocks:
            x = block(x, allowed)
        x = self.ln_f(x) * keep[..., None]
        return self.classifier(x.sum(1) / keep.sum(1, keepdim=True).clamp(min=1))


@register_task("transformer-sst2")
class SST2Transformer(Task):
    family = "transformer"
    dataset = "SST-2 (GLUE; test = dev)"
    paper = "our recipe (BERT fine-tuning shape, Devlin et al. 2019); SST-2 (Socher et al. 2013); GLUE"
    vocab_size, layers, heads, dim, max_len, dropout = 14_808, 2, 4, 128, 64, 0.1
    profiles = {
        "full": Recipe(batch_size=32, lr=5e-4, epochs=10, optimizer="adamw", weight_decay=0.01, schedule="cosine",
                       warmup=0.1, eval_batch_size=256),
        "quick": Recipe(batch_size=32, lr=5e-4, epochs=1, optimizer="adamw", weight_decay=0.01, schedule="cosine",
                        warmup=0.1, eval_batch_size=256, train_subset=40_000),
    }

    def model(self):
        return TransformerClassifier(self.vocab_size, 2, self.layers, self.heads, self.dim, self.max_len, self.dropout)

    def load(self, data_root):
        splits = load_sst2(data_root, self.max_len)
        self.vocab_size = splits.info["vocab_size"]  # 14,808 for GLUE's files
        return splits

    def prunable(self, model):
        return transformer_prunable(model)
