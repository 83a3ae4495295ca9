"""Sequence tasks: vocabularies, language-model windows and state, perplexity, prunable weights,
FLOPs against hand formulas, and short trials on made-up data in the real file formats."""
import hashlib
import inspect
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from sparsebench import Recipe, registry
from sparsebench.core.flops import count_forward_flops
from sparsebench.data.text import Carry, LMSplit, Vocab, Window, read_words
from sparsebench.running.trial import TrialSpec, run_trial

torch.set_num_threads(1)
REAL_DATA = Path(os.environ.get("SPARSEBENCH_DATA_ROOT") or "/nonexistent")


def plugin(name):
    return inspect.getmodule(registry.TASKS.get(name)[0])


PTB, LM, SST2 = plugin("lstm-ptb"), plugin("transformer-shakespeare"), plugin("transformer-sst2")
WORDS = "the cat sat on a mat and the dog ate N <unk> bone".split()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def sentences(n: int, seed: int) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    return [" ".join(WORDS[i] for i in torch.randint(0, len(WORDS), (int(k),), generator=g))
            for k in torch.randint(3, 9, (n,), generator=g)]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SPARSEBENCH_OFFLINE", "1")
    return tmp_path / "data"


@pytest.fixture
def ptb_root(offline, monkeypatch):
    """PTB-format files (a leading space, words, no <eos>) with their MD5s patched in."""
    (offline / "ptb").mkdir(parents=True)
    for split, n, seed in (("train", 300, 1), ("valid", 40, 2), ("test", 40, 3)):
        path = offline / "ptb" / f"ptb.{split}.txt"
        path.write_text("".join(f" {s} \n" for s in sentences(n, seed)))
        monkeypatch.setitem(PTB.MD5, split, md5(path))
    return offline


@pytest.fixture
def lm_roots(offline, monkeypatch):
    """Tiny Shakespeare and WikiText-2 files in their layouts, MD5s patched in."""
    (offline / "tinyshakespeare").mkdir(parents=True)
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n" * 40
    (offline / "tinyshakespeare" / "input.txt").write_text(text)
    monkeypatch.setattr(LM, "SHAKESPEARE_MD5", md5(offline / "tinyshakespeare" / "input.txt"))
    (offline / "wikitext-2").mkdir()
    for split, n, seed in (("train", 300, 4), ("valid", 40, 5), ("test", 40, 6)):
        path = offline / "wikitext-2" / f"{split}.txt"
        path.write_text(" \n = Title = \n \n" + "".join(f" {s} \n" for s in sentences(n, seed)))
        monkeypatch.setitem(LM.WIKITEXT_MD5, split, md5(path))
    return offline


@pytest.fixture
def sst2_root(offline, monkeypatch):
    """GLUE SST-2 tsv files; the row counts (GLUE's) and the files' sizes and checksums patched."""
    (offline / "sst2").mkdir(parents=True)
    for name, n, seed in (("train.tsv", 200, 7), ("dev.tsv", 40, 8)):
        rows = [(s, int("cat" in s)) for s in sentences(n, seed)]  # learnable: "cat" is positive
        (offline / "sst2" / name).write_text("sentence\tlabel\n" + "".join(f"{s} \t{y}\n" for s, y in rows))
        monkeypatch.setitem(SST2.ROWS, name, n)
        blob = (offline / "sst2" / name).read_bytes()
        monkeypatch.setitem(SST2.FILES, name, (len(blob), hashlib.sha256(blob).hexdigest()))
    monkeypatch.setattr(SST2, "VALIDATION", 40)
    return offline


# --- vocabulary and language-model windows ---

def test_vocab_orders_by_count_and_encodes():
    vocab = Vocab("b a b c b a".split(), specials=("<eos>",))
    assert vocab.itos == ["<eos>", "b", "a", "c"] and len(vocab) == 4
    assert vocab.encode(["c", "<eos>"]).tolist() == [3, 0]
    with pytest.raises(ValueError, match="'z'"):
        vocab.encode(["z"])
    assert Vocab(["a"], specials=("<unk>",), unknown="<unk>").encode(["z", "a"]).tolist() == [0, 1]


def test_read_words_ends_every_line_with_eos(tmp_path):
    (tmp_path / "f.txt").write_text(" a b \n\n c\n")
    assert read_words(tmp_path / "f.txt") == ["a", "b", "<eos>", "<eos>", "c", "<eos>"]


def test_windows_are_consecutive_with_targets_shifted_by_one():
    split = LMSplit(torch.arange(23), seq_len=4)  # 2 rows of 11 tokens, the 23rd dropped
    batches = list(split.batches(2))
    assert split.num_batches(2) == len(batches) == 3  # 10 predictions per row: 4 + 4 + 2
    rows = torch.arange(22).view(2, 11)
    assert torch.equal(torch.cat([x for x, _, _ in batches], 1), rows[:, :-1])
    assert torch.equal(torch.cat([y for _, _, y in batches], 1), rows[:, 1:])
    assert batches[0][0].tolist() == [[0, 1, 2, 3], [11, 12, 13, 14]]
    assert PTB.PTBLSTM("quick").batch_size_of(batches[0]) == 2  # rows: the recipe's unit


def test_stateful_split_never_shuffles_and_shares_one_carry_per_pass():
    split = LMSplit(torch.arange(200), seq_len=5)
    plain = list(split.batches(4))
    shuffled = list(split.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(plain, shuffled))
    assert len({id(w.carry) for _, w, _ in shuffled}) == 1 and shuffled[0][1].carry is not plain[0][1].carry


def test_stateless_split_shuffles_windows_each_with_its_own_carry():
    split = LMSplit(torch.arange(200), seq_len=5, stateful=False)
    shuffled = list(split.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    starts = [int(x[0, 0]) for x, _, _ in shuffled]
    assert sorted(starts) == list(range(0, 49, 5)) and starts != sorted(starts)
    assert len({id(w.carry) for _, w, _ in shuffled}) == len(shuffled)


def test_subset_keeps_a_prefix_of_tokens():
    split = LMSplit(torch.arange(100), seq_len=7)
    assert split.subset(None) is split and split.subset(30).tokens.tolist() == list(range(30))


# --- recurrent state, perplexity ---

def tiny_lstm(vocab=12, hidden=8):
    torch.manual_seed(0)
    return PTB.LSTMLanguageModel(vocab, hidden, 2, 0.1)


def test_state_is_carried_detached_across_windows_and_reset_per_pass():
    task, model = PTB.PTBLSTM("quick"), tiny_lstm()
    split = LMSplit(torch.randint(0, 12, (2 * 25,), generator=torch.Generator().manual_seed(1)), seq_len=6)
    first, second = list(split.batches(2))[:2]
    task.loss(model, first)
    state = first[1].carry.state
    assert state is not None and not any(s.requires_grad for s in state)
    # the second window with the carried state equals one pass over both windows
    logits, _ = model(torch.cat([first[0], second[0]], 1))
    expected = nn.functional.cross_entropy(logits[:, 6:].flatten(0, 1), second[2].flatten())
    assert task.nll(model, second).item() == pytest.approx(expected.item(), rel=1e-5)
    assert task.nll(model, first).item() == pytest.approx(task.nll(model, first).item())  # same start again
    assert task.nll(model, second).item() == pytest.approx(expected.item(), rel=1e-5)
    assert next(iter(split.batches(2)))[1].carry.state is None  # a new pass starts afresh


def test_training_loss_sums_over_time_as_zaremba():
    task, model = PTB.PTBLSTM("quick"), tiny_lstm()
    batch = next(iter(LMSplit(torch.arange(60) % 12, seq_len=5).batches(3)))
    mean = task.nll(model, (batch[0], Window(Carry()), batch[2]))
    assert task.loss(model, batch).item() == pytest.approx(5 * mean.item())


class FixedDistribution(nn.Module):
    """Predicts the same next-token distribution everywhere (log-probabilities ``logp``)."""

    def __init__(self, logp):
        super().__init__()
        self.logp = logp

    def forward(self, tokens, state=None):
        return self.logp.expand(*tokens.shape, -1), state


@pytest.mark.parametrize("rows", [1, 3])
def test_perplexity_by_hand(rows):
    task = PTB.PTBLSTM("quick")
    task.recipe = Recipe(batch_size=3, lr=1.0, epochs=1, eval_batch_size=rows)
    tokens = torch.tensor([0, 1, 1, 2, 0, 1, 2, 2, 1, 0, 0, 1, 2])
    split = LMSplit(tokens, seq_len=2)
    assert task.evaluate(FixedDistribution(torch.zeros(5)), split) == pytest.approx(5.0)  # uniform: vocab size
    p = torch.tensor([0.5, 0.3, 0.2])
    targets = tokens[:len(tokens) // rows * rows].view(rows, -1)[:, 1:].flatten()
    by_hand = math.exp(-sum(math.log(p[t]) for t in targets.tolist()) / len(targets))
    assert task.evaluate(FixedDistribution(p.log()), split) == pytest.approx(by_hand)


# --- prunable weights and FLOPs ---

def test_lstm_prunable_weights_follow_zhu_and_gupta():
    names = PTB.PTBLSTM("quick").prunable(tiny_lstm())
    assert names == ["embedding.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.weight_ih_l1",
                     "lstm.weight_hh_l1", "decoder.weight"]


def block_weights(prefix, layers):
    return [f"{prefix}.{i}.{w}" for i in range(layers) for w in ("attn.q_proj.weight", "attn.k_proj.weight",
            "attn.v_proj.weight", "attn.out_proj.weight", "fc1.weight", "fc2.weight")]


def test_transformer_prunable_weights_are_attention_and_mlp_matrices():
    gpt = LM.GPT(30, LM.GPTConfig(layers=2, heads=2, dim=8, context=6))
    assert LM.ShakespeareGPT("quick").prunable(gpt) == block_weights("blocks", 2)
    assert gpt.head.weight is gpt.tok_emb.weight  # tied: not a separate parameter
    clf = SST2.TransformerClassifier(30, 2, layers=2, heads=2, dim=8, max_len=6, dropout=0.0)
    assert SST2.SST2Transformer("quick").prunable(clf) == block_weights("blocks", 2)


def lm_flops(task, model, batch):
    return count_forward_flops(model, task.prunable(model), lambda: task.loss(model, batch), task.batch_size_of(batch))


def test_lstm_flops_match_the_hand_formula():
    v, h, b, t = 12, 8, 3, 5
    task, model = PTB.PTBLSTM("quick"), tiny_lstm(v, h)
    batch = next(iter(LMSplit(torch.arange(60) % v, seq_len=t).batches(b)))
    f = lm_flops(task, model, batch)
    lstm = 2 * (4 * h * h) * t  # one weight matrix, per sequence
    assert f.per_example() == 4 * lstm + 2 * h * v * t
    assert all(f.prunable[f"lstm.weight_{k}_l{i}"] / b == lstm for k in ("ih", "hh") for i in (0, 1))
    assert f.prunable["decoder.weight"] / b == 2 * h * v * t and f.prunable["embedding.weight"] == 0


def test_transformer_flops_match_the_hand_formula():
    v, d, layers, t, b = 30, 8, 2, 6, 3
    task = LM.ShakespeareGPT("quick")
    model = LM.GPT(v, LM.GPTConfig(layers=layers, heads=2, dim=d, context=t))
    batch = next(iter(LMSplit(torch.arange(40) % v, seq_len=t, stateful=False).batches(b)))
    f = lm_flops(task, model, batch)
    projections, mlp, attention = 4 * 2 * d * d * t, 2 * 2 * d * 4 * d * t, 2 * 2 * t * t * d
    assert f.per_example() == layers * (projections + mlp + attention) + 2 * d * v * t
    assert f.prunable["blocks.1.attn.q_proj.weight"] / b == 2 * d * d * t
    assert f.prunable["blocks.0.fc2.weight"] / b == 2 * 4 * d * d * t


# --- short trials on made-up data in the real formats ---

TINY_LM = dict(batch_size=4, steps=6, eval_batch_size=2)


class TinyPTB(PTB.PTBLSTM):
    hidden, seq_len = 16, 8
    profiles = {"tiny": Recipe(lr=1.0, grad_clip=5.0, schedule="step", milestones=(0.5,), gamma=0.5, **TINY_LM)}


class TinyShakespeare(LM.ShakespeareGPT):
    configs = {"tiny": LM.GPTConfig(layers=1, heads=2, dim=16, context=16)}
    profiles = {"tiny": Recipe(optimizer="adamw", lr=3e-3, warmup=0.2, schedule="cosine", **TINY_LM)}
    eval_tokens = {"tiny": 300}


class TinyWikiText2(LM.WikiText2GPT):
    configs = {"tiny": LM.GPTConfig(layers=1, heads=2, dim=16, context=8, dropout=0.1)}
    profiles = TinyShakespeare.profiles


class TinySST2(SST2.SST2Transformer):
    layers, heads, dim, max_len = 1, 2, 16, 12
    profiles = {"tiny": Recipe(batch_size=16, epochs=2, optimizer="adamw", lr=3e-3, eval_batch_size=64)}


def trial(cls, data_root, method="dense", sparsity=0.0):
    """Run a test-only task class through ``run_trial``, registered for the trial only."""
    name = f"test-{cls.__name__}"
    registry.register_task(name)(cls)
    try:
        result = run_trial(TrialSpec(task=name, method=method, sparsity=sparsity, profile="tiny"), data_root)
    finally:
        registry.TASKS.entries.pop(name)
    assert result["status"] == "completed", result.get("traceback") or result["reason"]
    return result["metrics"]


def test_lstm_ptb_trial_prunes_lstm_embedding_and_softmax(ptb_root):
    m = trial(TinyPTB, ptb_root, "magnitude", 0.5)
    assert m["final/sparsity"] == pytest.approx(0.5, abs=0.005)
    assert 1 < m["final/test_perplexity"] < 13  # 12 words and <eos>: better than uniform
    assert m["params/prunable"] == 2 * 13 * 16 + 2 * (4 * 16 * 16 * 2)


@pytest.mark.parametrize("task", [TinyShakespeare, TinyWikiText2])
def test_transformer_lm_trials(lm_roots, task):
    m = trial(task, lm_roots)
    assert math.isfinite(m["final/test_perplexity"]) and m["cost/train_steps"] == 6


def test_transformer_sst2_trial_reports_dev_as_test(sst2_root):
    m = trial(TinySST2, sst2_root)
    assert 0 <= m["final/test_accuracy"] <= 100 and m["cost/train_steps"] == 2 * math.ceil(160 / 16)


def test_sst2_format_and_row_count_are_checked(sst2_root):
    from sparsebench.data import DataError
    path = sst2_root / "sst2" / "dev.tsv"
    path.write_text(path.read_text() + "one more \t1\n")
    with pytest.raises(DataError, match="41 rows"):
        SST2.read_sst2(path)
    path.write_text("sentence\tlabel\nbad \t2\n")
    with pytest.raises(DataError, match="labelled GLUE SST-2"):
        SST2.read_sst2(path)


# --- the real files, where this machine has them ---

@pytest.mark.skipif(not (REAL_DATA / "ptb").exists(), reason="SPARSEBENCH_DATA_ROOT has no real files")
def test_real_token_counts_match_the_data_readme(monkeypatch):
    monkeypatch.setenv("SPARSEBENCH_CACHE", os.environ.get("SPARSEBENCH_CACHE", "/tmp/sbcache-seq"))
    ptb = PTB.load_ptb(REAL_DATA, 20)
    assert [len(s) for s in (ptb.train, ptb.val, ptb.test)] == [929_589, 73_760, 82_430]
    assert ptb.info["vocab_size"] == PTB.PTBLSTM.vocab_size
    wiki = LM.load_wikitext2(REAL_DATA, 35)
    assert [len(s) for s in (wiki.train, wiki.val, wiki.test)] == [2_088_628, 217_646, 245_569]
    assert wiki.info["vocab_size"] == LM.WikiText2GPT.vocab_size
    chars = LM.load_shakespeare(REAL_DATA, 64)
    assert sum(len(s) for s in (chars.train, chars.val, chars.test)) == 1_115_394
    assert chars.info["vocab_size"] == LM.ShakespeareGPT.vocab_size
    sst2 = SST2.load_sst2(REAL_DATA, 64)
    assert (len(sst2.train), len(sst2.val), len(sst2.test)) == (67_349 - 872, 872, 872)
    assert sst2.info["vocab_size"] == SST2.SST2Transformer.vocab_size


def test_full_ptb_schedule_halves_the_rate_from_epoch_5_as_zaremba():
    from sparsebench.core.train import lr_factor
    recipe, epoch = PTB.PTBLSTM.profiles["full"], 2324  # windows per epoch of the real training set
    total = recipe.total_steps(epoch)
    assert [lr_factor(recipe, k * epoch, total) for k in range(13)] == [1.0] * 4 + [0.5 ** j for j in range(1, 10)]
    assert lr_factor(recipe, 4 * epoch - 1, total) == 1.0


def test_sst2_is_unpacked_from_glues_archive_into_the_cache(sst2_root, monkeypatch):
    import zipfile
    folder = sst2_root / "sst2"
    with zipfile.ZipFile(folder / "SST-2.zip", "w") as z:
        for name in ("train.tsv", "dev.tsv"):
            z.writestr(f"SST-2/{name}", (folder / name).read_text())
            (folder / name).rename(folder / f"{name}.bak")
    monkeypatch.setattr(SST2, "GLUE_MD5", md5(folder / "SST-2.zip"))
    path = SST2.sst2_file(sst2_root, "dev.tsv")
    assert path.parent == Path(os.environ["SPARSEBENCH_CACHE"]) / "sst2"
    assert path.read_text() == (folder / "dev.tsv.bak").read_text()
