"""The tracking store under concurrency and failure: created once, refused when broken, and an
unreachable server named in seconds."""
import socket
import sqlite3
import subprocess
import sys

import pytest

from sparsebench import cli
from sparsebench.running import tracking

OPEN_AND_WRITE = """
import sys
from sparsebench.running import tracking
uri = tracking.open_store(sys.argv[1])
tracking.start_sweep(uri, ["tiny-mlp"], "race", {})
"""


def test_sweeps_started_at_once_on_a_fresh_store_create_it_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    starts = [subprocess.Popen([sys.executable, "-c", OPEN_AND_WRITE, uri], stderr=subprocess.PIPE, text=True)
              for _ in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in starts]
    assert [p.returncode for p in starts] == [0] * 4, "\n".join(errors)
    assert len(tracking.MlflowClient(uri).search_runs(
        [tracking.MlflowClient(uri).get_experiment_by_name("sparsebench/tiny-mlp").experiment_id])) == 4


def test_a_half_migrated_store_is_refused_with_the_way_out(tmp_path, capsys):
    path = tmp_path / "mlflow.db"
    with sqlite3.connect(path) as db:  # what an interrupted migration leaves behind
        db.execute("create table alembic_version (version_num varchar(32) not null)")
        db.execute("create table _alembic_tmp_runs (run_uuid varchar(32))")
    with pytest.raises(tracking.StoreError, match="half-migrated .*mv .*mlflow.db .*broken && sparsebench import"):
        tracking.open_store(f"sqlite:///{path}")
    assert cli.main(["leaderboard", "--tracking-uri", f"sqlite:///{path}", "--out", str(tmp_path / "board")]) == 2
    assert "half-migrated" in capsys.readouterr().err


def test_an_unreachable_tracking_server_is_named(capsys, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    code = cli.main(["run", "--task", "tiny-mlp", "--method", "dense", "--tracking-uri", uri])
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot reach MLflow at {uri}" in err and "Traceback" not in err
