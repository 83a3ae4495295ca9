"""Whether an MLflow store can be used, checked before anything runs: a local store's folder can be
written and has room, its SQLite file is not half-migrated; a tracking server answers within seconds,
and answers as MLflow does. (No MLflow here: :func:`sparsebench.running.tracking.open_store` runs these
checks, then has MLflow create or migrate the store.)
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from sparsebench.errors import StoreError

REACH_TIMEOUT_S = 5
STORE_MIN_FREE_MB = 8  # a local store's disk must have this much free for a command to start


def open_lock(path: Path):
    """The lock file beside the SQLite store ``path``, opened; refused where its folder cannot be written
    or its disk is nearly full (``STORE_MIN_FREE_MB``)."""
    try:
        lock = open(path.with_name(path.name + ".lock"), "w")
        free = shutil.disk_usage(path.parent).free
    except OSError as exc:
        raise StoreError(f"cannot write the MLflow store's folder {path.parent}: {exc.strerror or exc}") from None
    if free < STORE_MIN_FREE_MB * 2**20:
        lock.close()
        raise StoreError(f"the MLflow store's folder {path.parent} has {free / 2**20:.1f} MB free on its disk, "
                         f"under the {STORE_MIN_FREE_MB} MB a command needs: free space, or give another "
                         "store (--tracking-uri)")
    return lock


def probe_server(uri: str) -> None:
    """A tracking server at ``uri`` answers MLflow's REST API within ``REACH_TIMEOUT_S`` seconds, as MLflow does."""
    probe = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"  # /health skips the Host check
    try:
        with urllib.request.urlopen(probe, timeout=REACH_TIMEOUT_S) as answer:
            body = answer.read()
        if not isinstance(json.loads(body), dict):
            raise ValueError("not a JSON object")
    except urllib.error.HTTPError as exc:  # it answers; 401 and the like are MLflow's to handle
        if exc.code == 403 and "Host header" in exc.read().decode(errors="replace"):
            raise StoreError(f"MLflow at {uri} refuses requests addressed to {urllib.parse.urlsplit(uri).netloc}: "
                             "start it with --allowed-hosts listing that address, or use its IP address") from None
        if exc.code in (404, 405, 501):
            raise StoreError(f"{uri} is not an MLflow tracking server: it answered HTTP {exc.code} to MLflow's "
                             "REST API (is the address or port right?)") from None
    except ValueError:  # 200, but no MLflow answer (an HTML page, say)
        raise StoreError(f"{uri} is not an MLflow tracking server: it answered MLflow's REST API with something "
                         "other than MLflow's JSON (is the address or port right?)") from None
    except (OSError, urllib.error.URLError) as exc:
        raise StoreError(f"cannot reach MLflow at {uri}: {getattr(exc, 'reason', exc)}. Is the tracking "
                         "server running, and is the address right (--tracking-uri or MLFLOW_TRACKING_URI)?") \
            from None


WAY_OUT = (". To start over from the committed results, move it aside and rebuild it from the runs bundle: "
           "mv {path} {path}.broken && sparsebench import leaderboard/runs")


def refuse_half_migrated(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("select name from sqlite_master where type = 'table'")]
    leftovers = [t for t in tables if t.startswith("_alembic_tmp_")]
    if leftovers:
        raise StoreError(f"the MLflow store {path} is half-migrated (a schema migration was interrupted: "
                         f"{', '.join(leftovers)} left behind){WAY_OUT.format(path=path)}")
