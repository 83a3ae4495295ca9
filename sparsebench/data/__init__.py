"""Data root, cache and checksums.

Datasets are read from a data root (``--data-root`` or ``SPARSEBENCH_DATA_ROOT``) laid out as the
usual loaders expect (``MNIST/raw/*.gz``, ``ptb/ptb.train.txt``, ...). A file found there is
checked against its MD5; a file not there is downloaded into the cache (``SPARSEBENCH_CACHE``,
default ``~/.cache/sparsebench``) with the same check, unless ``SPARSEBENCH_OFFLINE=1``. The
data root is never written to: what must be unpacked is unpacked in the cache.
"""
from __future__ import annotations

import os
from pathlib import Path

from torchvision.datasets.utils import calculate_md5, download_url

DATA_ROOT_ENV = "SPARSEBENCH_DATA_ROOT"
CACHE_ENV = "SPARSEBENCH_CACHE"
OFFLINE_ENV = "SPARSEBENCH_OFFLINE"


class DataError(RuntimeError):
    """A dataset file is missing, corrupt, or cannot be downloaded."""


def data_root(option: str | os.PathLike | None = None) -> Path | None:
    value = option or os.environ.get(DATA_ROOT_ENV)
    return Path(value).expanduser().resolve() if value else None


def cache_dir(*parts: str) -> Path:
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sparsebench").expanduser()
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def verified_file(root: Path | None, relpath: str, md5: str | None, urls: list[str]) -> Path:
    """Path of ``relpath`` checked against ``md5``: from the data root, the cache, or downloaded.

    ``md5=None`` is for files that have no published checksum (their presence is still checked).
    """
    for base in ([root] if root else []) + [cache_dir()]:
        path = base / relpath
        if path.exists():
            if md5 and (actual := calculate_md5(str(path))) != md5:
                raise DataError(f"{path} is corrupt: MD5 {actual}, expected {md5}. "
                                f"Delete it and download it again (from {urls[0] if urls else 'its source'}).")
            return path
    where = f"data root {root}" if root else f"no data root (set {DATA_ROOT_ENV} or --data-root)"
    if os.environ.get(OFFLINE_ENV) == "1" or not urls:
        raise DataError(f"{relpath} is missing: {where}, and downloading is off ({OFFLINE_ENV}=1).")
    target = cache_dir() / relpath
    errors = []
    for url in urls:
        try:
            download_url(url, str(target.parent), target.name, md5)
            if target.exists() and (not md5 or calculate_md5(str(target)) == md5):
                return target
            errors.append(f"{url}: checksum mismatch")
        except Exception as exc:  # network errors come in many types
            errors.append(f"{url}: {exc}")
    raise DataError(f"{relpath} is missing ({where}) and could not be downloaded: " + "; ".join(errors))


def staged_copy(files: dict[str, Path], *folder: str) -> Path:
    """A writable cache folder holding links to ``files`` (name -> verified path), for loaders that
    unpack next to their archives."""
    target = cache_dir(*folder)
    for name, src in files.items():
        link = target / name
        if link.is_symlink() or link.exists():
            if link.resolve() == src.resolve():
                continue
            link.unlink()
        link.symlink_to(src.resolve())
    return target
