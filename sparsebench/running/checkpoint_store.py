"""Trainings kept as MLflow artifacts: a checkpoint run per key, tagged with its file's SHA-256
(the store side of :mod:`sparsebench.running.checkpoints`)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sparsebench.running.records import code_version
from sparsebench.running.tracking import EXPERIMENT_PREFIX, experiment, store_client

CHECKPOINT_DIGEST = "sb.checkpoint_sha256"  # a checkpoint run's tag: the SHA-256 of its artifact


def fetch_checkpoint(uri: str, task: str, key: str, artifact: str, folder: Path) -> tuple[Path, str, str] | None:
    """Download a stored checkpoint ``key`` of ``task``'s experiment into ``folder`` (under a
    temporary name): its path, the SHA-256 its run recorded, and the run's id; None if there is none."""
    client = store_client(uri)
    exp = client.get_experiment_by_name(EXPERIMENT_PREFIX + task)
    if exp is None:
        return None
    found = client.search_runs([exp.experiment_id], f"tags.`sb.kind` = 'checkpoint' and tags.`sb.checkpoint` = '{key}' "
                               "and attributes.status = 'FINISHED'", max_results=1)
    if not found:
        return None
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        local = client.download_artifacts(found[0].info.run_id, artifact, tmp)
        fd, path = tempfile.mkstemp(dir=folder, suffix=".tmp")
        os.close(fd)
        os.replace(local, path)
    return Path(path), found[0].data.tags.get(CHECKPOINT_DIGEST, ""), found[0].info.run_id


def discard_checkpoint(uri: str, run_id: str) -> None:
    """Delete a stored checkpoint's run (a corrupt copy), so that no worker fetches it again."""
    store_client(uri).delete_run(run_id)


def store_checkpoint(uri: str, task: str, key: str, path: Path, artifact: str, digest: str) -> None:
    """Keep the checkpoint file at ``path`` as ``artifact`` of a run tagged with its key and ``digest``
    (its SHA-256, checked when it is fetched)."""
    client = store_client(uri)
    run = client.create_run(experiment(client, task), run_name=f"checkpoint-{key[:12]}",
                            tags={"sb.kind": "checkpoint", "sb.checkpoint": key, CHECKPOINT_DIGEST: digest,
                                  "sb.code_version": code_version()})
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / artifact
        named.write_bytes(path.read_bytes())
        client.log_artifact(run.info.run_id, str(named))
    client.set_terminated(run.info.run_id, "FINISHED")
