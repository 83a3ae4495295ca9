"""What is unpacked or decoded from a verified archive is verified too (issue 17, failure mode 3).

Each case damages what an earlier load left in a temporary cache (``SPARSEBENCH_CACHE``) — a
truncated file, or different bytes of the same size — and loads again: the data must be the
archive's, not a traceback from deep inside a loader nor wrong labels loaded silently. MNIST and
SST-2 use the real files of the data root; the CIFAR-10 archives are small ones in the real
formats (the official files are not on these machines; the JPEG variant's 60,000 images take
long to decode), the JPEG one made of real images of the real archive.
"""
import gzip
import hashlib
import inspect
import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10

from sparsebench import registry
from sparsebench.data import DataError
from sparsebench.data.vision import load_mnist

DATA = Path(os.environ.get("SPARSEBENCH_DATA_ROOT") or Path(__file__).resolve().parents[2] / "shared" / "data")
MNIST_RAW = DATA / "MNIST" / "raw"
cifar = inspect.getmodule(registry.TASKS.get("resnet20-cifar10")[0])
SST2 = inspect.getmodule(registry.TASKS.get("transformer-sst2")[0])


def md5(blob: bytes) -> str:
    return hashlib.md5(blob).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("SPARSEBENCH_CACHE", str(path))
    monkeypatch.setenv("SPARSEBENCH_OFFLINE", "1")
    for loader in (load_mnist, cifar.load_cifar10, SST2.load_sst2):
        loader.cache_clear()
    yield path
    for loader in (load_mnist, cifar.load_cifar10, SST2.load_sst2):
        loader.cache_clear()


def rewrite_checksums_beside(path: Path) -> None:
    """What a careless repair does after changing ``path``: its checksums beside it made anew (the
    ``.md5`` sidecar earlier versions checked, and a ``.sha256``)."""
    blob = path.read_bytes()
    path.with_name(path.name + ".md5").write_text(f"{md5(blob)}  {path.name}\n")
    path.with_name(path.name + ".sha256").write_text(f"{hashlib.sha256(blob).hexdigest()}  {path.name}\n")


def same_size_other_bytes(path: Path, header: int) -> None:
    """Every byte after ``header`` replaced by another value: same size, different content."""
    blob = bytearray(path.read_bytes())
    blob[header:] = bytes((b + 1) % 10 for b in blob[header:])
    path.write_bytes(bytes(blob))


# --- MNIST: torchvision's raw files, as unpacked in the cache next to their .gz ---

needs_mnist = pytest.mark.skipif(not MNIST_RAW.exists(), reason="no MNIST in the data root")


def unpacked_mnist(cache: Path) -> Path:
    """The four raw MNIST files unpacked in the cache where torchvision's loader puts them."""
    raw = cache / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in MNIST_RAW.glob("*.gz"):
        (raw / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    return raw


def mnist_test_labels() -> torch.Tensor:
    blob = gzip.decompress((MNIST_RAW / "t10k-labels-idx1-ubyte.gz").read_bytes())
    return torch.frombuffer(bytearray(blob[8:]), dtype=torch.uint8).long()


@needs_mnist
def test_truncated_unpacked_mnist_file_is_not_read(cache):
    raw = unpacked_mnist(cache)
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    splits = load_mnist(DATA)
    assert splits.test.inputs.shape == (10_000, 1, 28, 28)
    assert torch.equal(splits.test.targets, mnist_test_labels())


@needs_mnist
def test_rewritten_mnist_labels_of_the_same_size_are_not_loaded(cache):
    raw = unpacked_mnist(cache)
    same_size_other_bytes(raw / "t10k-labels-idx1-ubyte", header=8)
    assert torch.equal(load_mnist(DATA).test.targets, mnist_test_labels())


# --- official CIFAR-10: the batches torchvision unpacks from cifar-10-python.tar.gz ---

def official_archive(root: Path, monkeypatch) -> dict:
    """A small ``cifar-10-python.tar.gz`` in the data root (5 train batches of 4 images, a test
    batch of 6), with torchvision's expected MD5s set to its files'."""
    rng = np.random.default_rng(0)
    members, labels = {}, {}
    for name, n in {**{f"data_batch_{i}": 4 for i in range(1, 6)}, "test_batch": 6}.items():
        labels[name] = rng.integers(0, 10, n).tolist()
        members[name] = pickle.dumps({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                      "labels": labels[name]})
    members["batches.meta"] = pickle.dumps({"label_names": list(cifar.CLASSES)})
    archive = root / CIFAR10.filename
    with tarfile.open(archive, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(f"{CIFAR10.base_folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(archive.read_bytes()))
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5(members[f"data_batch_{i}"])]
                                                for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(members["test_batch"])]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(members["batches.meta"])})
    return labels


def test_truncated_unpacked_cifar10_file_is_not_read(cache, tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    labels = official_archive(root, monkeypatch)
    monkeypatch.setattr(cifar, "VALIDATION", 4)
    folder = cache / cifar.OFFICIAL
    folder.mkdir(parents=True)
    with tarfile.open(root / CIFAR10.filename) as tar:
        tar.extractall(folder, filter="data")  # as torchvision unpacks it in the cache
    meta = folder / CIFAR10.base_folder / "batches.meta"
    meta.write_bytes(meta.read_bytes()[:10])
    splits = registry.TASKS.get("resnet20-cifar10")[0]("quick").load(root)
    assert sorted(splits.test.targets.tolist()) == sorted(labels["test_batch"])


# --- the JPEG variant: decoded once into a tensor file in the cache ---

@pytest.fixture(scope="module")
def real_jpegs():
    """Real images of the real ``cifar10-jpeg.tar.gz``: 2 train and 1 test per class."""
    real = DATA / cifar.JPEG_ARCHIVE
    if not real.exists():
        pytest.skip("no CIFAR-10 JPEG variant in the data root")
    want, taken = {"train": 2, "test": 1}, {}
    with tarfile.open(real) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if member.isfile() and parts[-1].endswith(".jpg"):
                key = parts[-3], parts[-2]
                if len(taken.setdefault(key, [])) < want[parts[-3]]:
                    taken[key].append((member.name, tar.extractfile(member).read()))
                if sum(map(len, taken.values())) == 30:
                    break
    return [m for ms in taken.values() for m in ms]


@pytest.fixture
def jpeg_root(tmp_path, monkeypatch, cache, real_jpegs):
    """A data root holding a ``cifar10-jpeg.tar.gz`` of those images."""
    root = tmp_path / "root"
    (root / "cifar10-jpeg").mkdir(parents=True)
    with tarfile.open(root / cifar.JPEG_ARCHIVE, "w:gz") as tar:
        for name, blob in real_jpegs:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    monkeypatch.setattr(cifar, "JPEG_MD5", md5((root / cifar.JPEG_ARCHIVE).read_bytes()))
    monkeypatch.setattr(cifar, "VALIDATION", 4)
    return root


def load_jpeg(root):
    cifar.load_cifar10.cache_clear()
    return registry.TASKS.get("resnet20-cifar10jpeg")[0]("quick").load(root)


def decoded_file(cache: Path) -> Path:
    (path,) = (cache / cifar.JPEG).glob("*.pt")
    return path


def test_truncated_decoded_jpeg_variant_is_decoded_again(jpeg_root, cache):
    first = load_jpeg(jpeg_root)
    path = decoded_file(cache)
    whole = path.read_bytes()
    path.write_bytes(whole[:len(whole) // 2])
    again = load_jpeg(jpeg_root)
    assert torch.equal(again.test.inputs, first.test.inputs) and torch.equal(again.test.targets, first.test.targets)
    assert path.read_bytes() == whole  # repaired in the cache


def test_rewritten_labels_of_the_decoded_jpeg_variant_are_detected(jpeg_root, cache):
    first = load_jpeg(jpeg_root)
    path = decoded_file(cache)
    size = path.stat().st_size
    blob = io.BytesIO()
    torch.save([(x, (y + 1) % 10) for x, y in torch.load(path)], blob)
    path.write_bytes(blob.getvalue())
    assert path.stat().st_size == size
    again = load_jpeg(jpeg_root)
    assert torch.equal(again.train.targets, first.train.targets) and torch.equal(again.test.targets, first.test.targets)


def test_a_decoded_jpeg_variant_rewritten_with_its_checksum_is_decoded_again(jpeg_root, cache):
    first = load_jpeg(jpeg_root)
    path = decoded_file(cache)
    blob = io.BytesIO()
    torch.save([(x, (y + 1) % 10) for x, y in torch.load(path)], blob)
    path.write_bytes(blob.getvalue())
    rewrite_checksums_beside(path)
    again = load_jpeg(jpeg_root)
    assert torch.equal(again.train.targets, first.train.targets) and torch.equal(again.test.targets, first.test.targets)


# --- SST-2: unpacked from GLUE's SST-2.zip into the cache ---

@pytest.fixture
def sst2_zip(tmp_path, monkeypatch, cache):
    """A data root holding only ``sst2/SST-2.zip``, of the real train.tsv and dev.tsv."""
    if not (DATA / "sst2" / "dev.tsv").exists():
        pytest.skip("no SST-2 in the data root")
    root = tmp_path / "root"
    (root / "sst2").mkdir(parents=True)
    with zipfile.ZipFile(root / "sst2" / "SST-2.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("train.tsv", "dev.tsv"):
            z.writestr(f"SST-2/{name}", (DATA / "sst2" / name).read_bytes())
    monkeypatch.setattr(SST2, "GLUE_MD5", md5((root / "sst2" / "SST-2.zip").read_bytes()))
    return root


def dev_labels() -> list[int]:
    return [label for _, label in SST2.read_sst2(DATA / "sst2" / "dev.tsv")]


def test_truncated_unpacked_sst2_file_is_unpacked_again(sst2_zip, cache):
    path = SST2.sst2_file(sst2_zip, "dev.tsv")
    path.write_bytes(path.read_bytes()[:5000])
    assert SST2.load_sst2(sst2_zip, 64).test.targets.tolist() == dev_labels()
    assert path.read_bytes() == (DATA / "sst2" / "dev.tsv").read_bytes()


def test_rewritten_sst2_labels_of_the_same_size_are_detected(sst2_zip, cache):
    path = SST2.sst2_file(sst2_zip, "dev.tsv")
    path.write_text(path.read_text().replace("\t1\n", "\tX\n").replace("\t0\n", "\t1\n").replace("\tX\n", "\t0\n"))
    assert [label for _, label in SST2.read_sst2(*SST2.sst2_text(sst2_zip, "dev.tsv"))] == dev_labels()


def test_unrepairable_cache_file_is_a_clear_error(sst2_zip, cache):
    path = SST2.sst2_file(sst2_zip, "dev.tsv")
    path.write_bytes(path.read_bytes()[:5000])
    (sst2_zip / "sst2" / "SST-2.zip").write_bytes(b"not a zip")
    message = r"dev.tsv is corrupt: .*, and making it again from sst2/SST-2.zip failed: .*SST-2.zip is corrupt"
    with pytest.raises(DataError, match=message):
        SST2.sst2_text(sst2_zip, "dev.tsv")


def flip_labels(path: Path) -> None:
    path.write_text(path.read_text().replace("\t1\n", "\tX\n").replace("\t0\n", "\t1\n").replace("\tX\n", "\t0\n"))


def test_unpacked_sst2_labels_rewritten_with_their_checksum_are_unpacked_again(sst2_zip, cache):
    path = SST2.sst2_file(sst2_zip, "dev.tsv")
    flip_labels(path)
    rewrite_checksums_beside(path)
    assert [label for _, label in SST2.read_sst2(*SST2.sst2_text(sst2_zip, "dev.tsv"))] == dev_labels()
    assert path.read_bytes() == (DATA / "sst2" / "dev.tsv").read_bytes()


def test_sst2_of_the_data_root_with_flipped_labels_is_refused(tmp_path, cache):
    """The tsv files of a data root have no published checksum: their sizes and SHA-256 are the
    loader's, so a copy whose every dev label is flipped (same size, right format) is refused."""
    if not (DATA / "sst2" / "dev.tsv").exists():
        pytest.skip("no SST-2 in the data root")
    root = tmp_path / "root"
    (root / "sst2").mkdir(parents=True)
    for name in ("train.tsv", "dev.tsv"):
        (root / "sst2" / name).write_bytes((DATA / "sst2" / name).read_bytes())
    assert SST2.sst2_text(root, "dev.tsv")[1] == (DATA / "sst2" / "dev.tsv").read_text()  # the real copy passes
    flip_labels(root / "sst2" / "dev.tsv")
    assert (root / "sst2" / "dev.tsv").stat().st_size == (DATA / "sst2" / "dev.tsv").stat().st_size
    with pytest.raises(DataError, match=r"sst2/dev.tsv is not GLUE's SST-2 dev.tsv: 94,931 bytes, SHA-256 .*"
                                        r"take the tsv files out of .*SST-2.zip"):
        SST2.load_sst2(root, 64)
