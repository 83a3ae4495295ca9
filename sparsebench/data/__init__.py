"""Data root, cache and checksums.

Datasets are read from a data root (``--data-root`` or ``SPARSEBENCH_DATA_ROOT``) laid out as the
usual loaders expect (``MNIST/raw/*.gz``, ``ptb/ptb.train.txt``, ...). A file found there is
checked against its MD5; a file not there is downloaded into the cache (``SPARSEBENCH_CACHE``,
default ``~/.cache/sparsebench``) with the same check, unless ``SPARSEBENCH_OFFLINE=1``. The
data root is never written to.

What is read is verified, also where it comes out of an archive: loaders read straight from the
verified archive where that is cheap (MNIST's ``.gz``, CIFAR-10's tarball); what is worth keeping
unpacked or decoded in the cache (``extracted``) has its digest recorded when written and checked
on every read, and is made again from the verified archive when it does not match. The digest is
kept apart from the file (``digests/`` of the cache, named by the archive's checksum) and is keyed
by that checksum, so that a file rewritten together with a checksum beside it does not pass.
"""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Callable

from sparsebench.errors import DataError

DATA_ROOT_ENV = "SPARSEBENCH_DATA_ROOT"
CACHE_ENV = "SPARSEBENCH_CACHE"
OFFLINE_ENV = "SPARSEBENCH_OFFLINE"


def data_root(option: str | os.PathLike | None = None) -> Path | None:
    value = option or os.environ.get(DATA_ROOT_ENV)
    return Path(value).expanduser().resolve() if value else None


def cache_dir(*parts: str) -> Path:
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sparsebench").expanduser()
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verified_file(root: Path | None, relpath: str, md5: str | None, urls: list[str]) -> Path:
    """Path of ``relpath`` checked against ``md5``: from the data root, the cache, or downloaded.

    ``md5=None`` is for files that have no published checksum (their presence is still checked).
    """
    for base in ([root] if root else []) + [cache_dir()]:
        path = base / relpath
        if path.exists():
            if md5 and (actual := file_md5(path)) != md5:
                raise DataError(f"{path} is corrupt: MD5 {actual}, expected {md5}. "
                                f"Delete it and download it again (from {urls[0] if urls else 'its source'}).")
            return path
    where = f"data root {root}" if root else f"no data root (set {DATA_ROOT_ENV} or --data-root)"
    if os.environ.get(OFFLINE_ENV) == "1" or not urls:
        raise DataError(f"{relpath} is missing: {where}, and downloading is off ({OFFLINE_ENV}=1).")
    target = cache_dir() / relpath
    from torchvision.datasets.utils import download_url

    errors = []
    for url in urls:
        try:
            download_url(url, str(target.parent), target.name, md5)
            if target.exists() and (not md5 or file_md5(target) == md5):
                return target
            errors.append(f"{url}: checksum mismatch")
        except Exception as exc:  # network errors come in many types
            errors.append(f"{url}: {exc}")
    raise DataError(f"{relpath} is missing ({where}) and could not be downloaded: " + "; ".join(errors))


def _write_atomic(path: Path, blob: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(blob)
        os.replace(tmp, path)  # readers see the old file or the new one, whole
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def digest_record(path: Path, source_md5: str) -> Path:
    """Where the digest of the cache file ``path``, made from the archive whose MD5 is
    ``source_md5``, is kept: apart from the file, under a name of that checksum."""
    return cache_dir("digests") / f"{source_md5}-{path.parent.name}-{path.name}.sha256"


def keyed_digest(blob: bytes, source_md5: str) -> str:
    """The SHA-256 of ``blob`` keyed by its archive's checksum (not what ``sha256sum`` prints)."""
    return hashlib.sha256(source_md5.encode() + b"\0" + blob).hexdigest()


def extracted(path: Path, make: Callable[[], bytes], source: str, source_md5: str) -> bytes:
    """The bytes of ``path``, a cache file made by ``make()`` from a verified archive (``source``,
    for messages, whose MD5 is ``source_md5``), checked against the digest recorded when it was
    written (:func:`digest_record`, :func:`keyed_digest`).

    A missing, truncated or altered file, or one without a recorded digest, is repaired
    automatically: made again with ``make()`` (which verifies the archive) and written atomically,
    then its digest. Only if that fails is a ``DataError`` raised, naming the file as corrupt and
    saying why it could not be made again. ``make`` must give the same bytes every time, so that
    processes making the file at once write the same file and digest.
    """
    record = digest_record(path, source_md5)
    problem = None
    if path.exists():
        blob = path.read_bytes()
        try:
            expected = record.read_text().split()[0]
        except (OSError, IndexError):
            expected = None
        if keyed_digest(blob, source_md5) == expected:
            return blob
        problem = ("is corrupt: it is not what was made from its archive (its digest differs)" if expected
                   else "has no recorded digest")
    try:
        blob = make()
        _write_atomic(path, blob)
        _write_atomic(record, f"{keyed_digest(blob, source_md5)}  {path}\n".encode())
        path.with_name(path.name + ".md5").unlink(missing_ok=True)  # the sidecar older versions kept beside it
    except (DataError, OSError) as exc:
        if problem is None:
            raise
        raise DataError(f"{path} {problem}, and making it again from {source} failed: {exc}") from exc
    return blob
