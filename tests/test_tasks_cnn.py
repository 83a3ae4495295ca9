"""The CNN tasks (tasks/cifar10.py, tasks/lenet5.py) on small data made here in the real file formats."""
import dataclasses
import hashlib
import inspect
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.datasets import CIFAR10

from sparsebench import Splits, registry
from sparsebench.data import DataError
from sparsebench.running.trial import TrialSpec, run_trial
from sparsebench.data.vision import normalize, random_crop_flip

cifar = inspect.getmodule(registry.TASKS.get("resnet20-cifar10")[0])
DATA = os.environ.get("SPARSEBENCH_DATA_ROOT") or str(Path(__file__).resolve().parents[2] / "shared" / "data")


def md5(blob: bytes) -> str:
    return hashlib.md5(blob).hexdigest()


def write_tar(path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return md5(path.read_bytes())


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An empty data root and cache, no downloads, and 4 validation images instead of 5,000."""
    root, cache = tmp_path / "root", tmp_path / "cache"
    root.mkdir()
    monkeypatch.setenv("SPARSEBENCH_CACHE", str(cache))
    monkeypatch.setenv("SPARSEBENCH_OFFLINE", "1")
    monkeypatch.setattr(cifar, "VALIDATION", 4)
    cifar.load_cifar10.cache_clear()
    yield root
    cifar.load_cifar10.cache_clear()


def make_official(root, monkeypatch):
    """A fake ``cifar-10-python.tar.gz`` (5 train batches of 4 images, a test batch of 6) in the
    data root; torchvision's expected MD5s are set to its files' (its class checks every member)."""
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": 4 for i in range(1, 6)} | {"test_batch": 6}
    members, images = {}, {}
    for name, n in batches.items():
        images[name] = (rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist())
        members[name] = pickle.dumps({"data": images[name][0], "labels": images[name][1]})
    members["batches.meta"] = pickle.dumps({"label_names": list(cifar.CLASSES)})
    archive = root / CIFAR10.filename
    tgz_md5 = write_tar(archive, {f"cifar-10-batches-py/{k}": v for k, v in members.items()})
    monkeypatch.setattr(CIFAR10, "tgz_md5", tgz_md5)
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5(members[f"data_batch_{i}"])]
                                                for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(members["test_batch"])]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(members["batches.meta"])})
    return images


def make_jpeg(root, monkeypatch):
    """A fake ``cifar10-jpeg.tar.gz`` in the data root: 2 train and 1 test image per class, each of
    one gray level 20 * label + 10; its MD5 patched into the module."""
    members = {}
    for split, n in (("train", 2), ("test", 1)):
        for label, name in enumerate(cifar.CLASSES):
            blob = io.BytesIO()
            Image.new("RGB", (32, 32), (20 * label + 10,) * 3).save(blob, "JPEG", quality=75)
            for i in range(n):
                members[f"{split}/{name}/{i:04d}.jpg"] = blob.getvalue()
    (root / "cifar10-jpeg").mkdir()
    monkeypatch.setattr(cifar, "JPEG_MD5", write_tar(root / cifar.JPEG_ARCHIVE, members))


@pytest.fixture
def official(env, monkeypatch):
    return make_official(env, monkeypatch)


@pytest.fixture
def jpeg(env, monkeypatch):
    make_jpeg(env, monkeypatch)


def pixels(x):
    """Normalized CIFAR inputs back to 0..255."""
    mean, std = torch.tensor(cifar.MEAN).view(1, 3, 1, 1), torch.tensor(cifar.STD).view(1, 3, 1, 1)
    return (x * std + mean) * 255


def load(name, root, profile="quick"):
    cls, defaults = registry.TASKS.get(name)
    return cls(profile, **defaults).load(root)


def test_official_archive_loads_normalized_with_validation_held_out(official, env):
    before = sorted(p.name for p in env.rglob("*"))
    splits = load("resnet20-cifar10", env)
    assert splits.info == {}
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 4, 6)
    assert splits.train.inputs.shape == (16, 3, 32, 32) and splits.train.inputs.dtype == torch.float32
    # every train and validation image is one of the archive's, with its label, once
    want = {(tuple(x), y) for name in official if name != "test_batch" for x, y in zip(*official[name])}
    got = [(tuple(pixels(x[None]).round().to(torch.uint8).flatten().tolist()), int(y))
           for split in (splits.train, splits.val) for x, y in zip(split.inputs, split.targets)]
    assert len(set(got)) == 20 and set(got) == want
    assert sorted(splits.test.targets.tolist()) == sorted(official["test_batch"][1])
    # training batches only are augmented, from the trial's generator, padding with black pixels
    assert splits.val.augment is None and splits.test.augment is None
    one, two = ([x for x, _ in splits.train.batches(8, shuffle=True, generator=torch.Generator().manual_seed(5))]
                for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(one, two))
    white = normalize(torch.full((16, 3, 32, 32), 255, dtype=torch.uint8), cifar.MEAN, cifar.STD)
    assert pixels(splits.train.augment(white, torch.Generator().manual_seed(0))).round().unique().tolist() == [0, 255]
    assert sorted(p.name for p in env.rglob("*")) == before  # the data root is never written


def test_jpeg_variant_is_decoded_into_the_cache_and_named(jpeg, env):
    splits = load("resnet20-cifar10jpeg", env)
    assert splits.info == {"dataset_variant": "cifar10-jpeg"}
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 4, 10)
    for split in (splits.train, splits.val, splits.test):  # labels follow the folder names
        level = pixels(split.inputs).mean((1, 2, 3))
        assert torch.allclose(level, 20 * split.targets.float() + 10, atol=1.5)
    assert list((env.parent / "cache" / "cifar10-jpeg").glob("*.pt"))
    assert [p.name for p in env.rglob("*") if p.is_file()] == ["cifar10-jpeg.tar.gz"]


def test_official_task_never_falls_back_to_the_jpeg_variant(jpeg, env, monkeypatch):
    with pytest.raises(DataError, match="cifar-10-python.tar.gz is missing.*the \\*-cifar10jpeg tasks read it"):
        load("resnet20-cifar10", env)
    make_official(env, monkeypatch)
    assert load("vgg16-cifar10", env, "full").info == {}
    assert load("vgg16-cifar10jpeg", env, "full").info == {"dataset_variant": "cifar10-jpeg"}


def test_corrupt_jpeg_archive_is_refused(jpeg, env, monkeypatch):
    monkeypatch.setattr(cifar, "JPEG_MD5", "0" * 32)
    with pytest.raises(DataError, match="cifar10-jpeg.tar.gz is corrupt"):
        load("resnet20-cifar10jpeg", env)


def test_vgg_quick_profile_evaluates_on_part_of_the_data(jpeg, env, monkeypatch):
    cls = registry.TASKS.get("vgg16-cifar10jpeg")[0]
    monkeypatch.setattr(cls, "eval_sizes", {"quick": (2, 3)})
    splits = load("vgg16-cifar10jpeg", env)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 2, 3)


def test_crop_flip_is_a_padded_window_flipped_or_not_and_seeded():
    x = torch.arange(2 * 6 * 6, dtype=torch.float32).view(1, 2, 6, 6).repeat(64, 1, 1, 1)
    fill = torch.tensor([-1.0, -2.0])
    out = random_crop_flip(x, torch.Generator().manual_seed(1), padding=2, fill=fill)
    padded = F.pad(x[:1] - fill.view(1, 2, 1, 1), (2, 2, 2, 2)) + fill.view(1, 2, 1, 1)
    windows = [padded[0, :, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
    candidates = torch.stack(windows + [w.flip(-1) for w in windows])
    matches = [(candidates == o).flatten(1).all(1).nonzero().flatten().tolist() for o in out]
    assert all(len(m) == 1 for m in matches)  # each output is exactly one window, flipped or not
    kinds = {m[0] for m in matches}
    assert len(kinds) > 20 and any(k < 25 for k in kinds) and any(k >= 25 for k in kinds)
    again = random_crop_flip(x, torch.Generator().manual_seed(1), padding=2, fill=fill)
    other = random_crop_flip(x, torch.Generator().manual_seed(2), padding=2, fill=fill)
    assert torch.equal(out, again) and not torch.equal(out, other)


RESNET20_PRUNABLE = (["conv.weight"] + [f"blocks.{b}.conv{c}.weight" for b in range(9) for c in (1, 2)]
                     + ["blocks.3.shortcut.0.weight", "blocks.6.shortcut.0.weight", "fc.weight"])
VGG16_PRUNABLE = [f"layers.{i}.conv.weight" for i in (0, 1, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16)] + ["fc.weight"]


@pytest.mark.parametrize("name, params, prunable, names, input_shape", [
    ("resnet20-cifar10", 272_474, 270_896, RESNET20_PRUNABLE, (3, 32, 32)),
    ("vgg16-cifar10", 14_728_266, 14_715_584, VGG16_PRUNABLE, (3, 32, 32)),
    ("lenet5-mnist", 431_080, 430_500, ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"], (1, 28, 28)),
])
def test_models_sizes_prunable_weights_and_outputs(name, params, prunable, names, input_shape):
    task = registry.TASKS.get(name)[0]("quick")
    torch.manual_seed(0)
    model = task.model()
    found = task.prunable(model)
    # all conv and linear weights, first conv and output layer included; no bias, no BatchNorm
    assert sorted(found) == sorted(names)
    weights = dict(model.named_parameters())
    assert sum(p.numel() for p in model.parameters()) == params
    assert sum(weights[n].numel() for n in found) == prunable
    assert model(torch.randn(2, *input_shape)).shape == (2, 10)
    for m in model.modules():  # OpenLTH's BatchNorm initialization
        if isinstance(m, torch.nn.BatchNorm2d):
            assert 0 <= m.weight.min() and m.weight.max() <= 1 and m.weight.std() > 0 and not m.bias.any()


def test_full_profiles_are_the_reference_recipes():
    for name in ("resnet20-cifar10", "vgg16-cifar10", "resnet20-cifar10jpeg"):
        full = registry.TASKS.get(name)[0].profiles["full"]
        assert (full.batch_size, full.lr, full.momentum, full.weight_decay, full.epochs) == (128, 0.1, 0.9, 1e-4, 160)
        assert (full.schedule, full.milestones, full.gamma, full.train_subset) == ("step", (0.5, 0.75), 0.1, None)
    full = registry.TASKS.get("lenet5-mnist")[0].profiles["full"]
    assert (full.batch_size, full.lr, full.momentum, full.weight_decay, full.steps) == (100, 0.1, 0.0, 5e-4, 100_000)
    assert (full.schedule, full.milestones) == ("step", (0.25, 0.5, 0.75))  # x0.1 every 25k steps


def test_medium_decay_differs_from_medium_in_decaying_batchnorm_and_biases_alone():
    profiles = registry.TASKS.get("resnet20-cifar10jpeg")[0].profiles
    medium, other = profiles["medium"], profiles["medium-decay"]
    assert not medium.decay_vectors and other.decay_vectors
    assert dataclasses.replace(other, decay_vectors=False) == medium
    assert registry.TASKS.version("resnet20-cifar10jpeg", "medium") != \
        registry.TASKS.version("resnet20-cifar10jpeg", "medium-decay")


@pytest.fixture
def tiny_task():
    """A test-only ``tiny`` profile of a registered task, under a test-only name."""
    added = []

    def make(name):
        cls = registry.TASKS.get(name)[0]
        tiny = dataclasses.replace(cls.profiles["quick"], batch_size=8, epochs=None, steps=3, train_subset=None)

        def load(self, root):  # at most 200 validation and test images
            s = cls.load(self, root)
            return Splits(s.train, s.val.subset(200), s.test.subset(200), s.info)

        sub = type(f"Tiny{cls.__name__}", (cls,), {"profiles": {**cls.profiles, "tiny": tiny}, "load": load})
        registry.register_task(f"{name}-tiny")(sub)
        added.append(f"{name}-tiny")
        return f"{name}-tiny"

    yield make
    for name in added:
        registry.TASKS.entries.pop(name)


def test_resnet20_trains_pruned_through_a_trial(jpeg, env, tiny_task):
    torch.set_num_threads(1)
    result = run_trial(TrialSpec(tiny_task("resnet20-cifar10jpeg"), "random", 0.8, profile="tiny"), env)
    assert result["status"] == "completed", result["reason"]
    assert result["info"]["dataset_variant"] == "cifar10-jpeg"
    m = result["metrics"]
    assert abs(m["final/sparsity"] - 0.8) < 1e-3 and m["cost/train_steps"] == 3
    assert m["params/total"] == 272_474 and m["params/prunable"] == 270_896
    assert set(result["layers"]) == set(RESNET20_PRUNABLE)


@pytest.mark.skipif(not os.path.exists(f"{DATA}/FashionMNIST/raw"), reason="Fashion-MNIST not in the data root")
def test_lenet5_trains_on_fashion_mnist(tiny_task, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEBENCH_CACHE", os.environ.get("SPARSEBENCH_CACHE", str(tmp_path)))  # not ~/.cache
    torch.set_num_threads(1)
    name = tiny_task("lenet5-fashionmnist")
    splits = load("lenet5-fashionmnist", Path(DATA))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (55_000, 5_000, 10_000)
    assert abs(splits.train.inputs.mean()) < 0.02 and abs(splits.train.inputs.std() - 1) < 0.02
    result = run_trial(TrialSpec(name, "dense", 0.0, profile="tiny"), Path(DATA))
    assert result["status"] == "completed", result["reason"]
    assert result["metrics"]["params/total"] == 431_080
