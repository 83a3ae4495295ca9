"""Integration: a real ``mlflow server`` on a real PostgreSQL, with proxied artifacts.

A PostgreSQL cluster is initialized in a temporary folder (Debian's ``postgresql`` package;
``.ci/run`` installs it), ``mlflow server`` runs on it with ``--artifacts-destination`` (so that
workers on other nodes upload through the server and need no shared filesystem), and the real
CLI, in subprocesses, runs a sweep on two workers, is interrupted, resumes it and builds the
leaderboard from the server. Both servers are stopped, and their folders removed, at the end.

Run alone: ``python -m pytest -m integration``.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import TEST_PLUGINS

pytestmark = pytest.mark.integration

PG_USER, PG_PASSWORD, PG_DB = "sparsebench", "s3cret", "mlflow"
# six trials; Ray on two cores runs two at a time, so that an interrupt after the first has finished always
# leaves some not started (Tune lets running ones finish for a few seconds, and those may complete)
SEEDS = ["0", "1", "2", "3", "4", "5"]
TRIAL_SECONDS = "3"  # test-slow sleeps this long in each trial: time to interrupt the sweep mid-way


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: Debian's newest /usr/lib/postgresql/<version>/bin, else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), 
                   key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()])
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb and (Path(initdb).parent / "pg_ctl").exists():
        return Path(initdb).parent
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


def stop_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """Stop a process started in its own session, and the processes it started (e.g. uvicorn's workers)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)
    try:  # children that outlived their parent (same process group)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def postgres():
    """A PostgreSQL cluster on a free port of 127.0.0.1, with database ``mlflow``; yields its URI (plain
    ``postgresql://``, as a user would write it). postgres refuses to run as root: as root, the cluster is
    owned by and runs as the ``postgres`` user (made by Debian's package), else ``nobody``."""
    pg_bin = postgres_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql (.ci/run does)")
    import psycopg

    run_as = {}
    # a folder of its own in /tmp (pytest's tmp_path is under a root-only folder that postgres cannot enter)
    base = Path(tempfile.mkdtemp(prefix="sparsebench-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = pwd.getpwnam("nobody")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    data, log, port = base / "data", base / "postgres.log", free_port()
    env = {**os.environ, "LC_ALL": "C", "PGTZ": "UTC"}
    started = False
    try:
        pwfile = base / "pwfile"
        pwfile.write_text(PG_PASSWORD + "\n")
        if run_as:
            os.chown(pwfile, run_as["user"], run_as["group"])
        subprocess.run([str(pg_bin / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
                        "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, text=True, env=env, cwd=base, **run_as)
        options = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        subprocess.run([str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60",
                        "start"], check=True, capture_output=True, text=True, env=env, cwd=base, **run_as)
        started = True
        with psycopg.connect(f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{port}/postgres",
                             autocommit=True) as db:
            db.execute(f"CREATE DATABASE {PG_DB}")
        yield f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{port}/{PG_DB}"
    except subprocess.CalledProcessError as exc:
        tail = log.read_text()[-4000:] if log.exists() else ""
        raise AssertionError(f"{exc.cmd[0]} failed: {exc.stdout}{exc.stderr}\n{tail}") from None
    finally:
        if started:  # that cluster's postmaster, and its children, exactly
            stop = subprocess.run([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "30",
                                   "stop"], capture_output=True, text=True, env=env, cwd=base, **run_as)
            if stop.returncode != 0 and (data / "postmaster.pid").exists():
                pid = int((data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def mlflow_server(postgres, tmp_path):
    """``mlflow server`` on the PostgreSQL store, serving artifacts from ``<tmp>/artifacts``; yields
    (tracking URI, artifacts folder)."""
    artifacts, workdir, log = tmp_path / "artifacts", tmp_path / "server", tmp_path / "server.log"
    artifacts.mkdir()
    workdir.mkdir()
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # as `make ui`: no job runner beside the server
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres,
               "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=workdir, start_new_session=True)
    try:
        def healthy():
            assert proc.poll() is None, f"mlflow server exited ({proc.returncode}):\n{log.read_text()[-4000:]}"
            try:
                with urllib.request.urlopen(uri + "/health", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False

        wait_until(healthy, 90, "mlflow server /health", log)
        yield uri, artifacts
    finally:
        stop_group(proc)
    # nothing of the store beside the server: the runs are in PostgreSQL, the artifacts in the destination
    assert not any(workdir.iterdir()), list(workdir.iterdir())


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sparsebench.cli", *args]


def cli_env() -> dict:
    """The store is the one given by --tracking-uri; Ray a local one of the sweep's own (its default)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    return {**env, "RAY_AUTH_MODE": "disabled"}


def trial_runs(client: MlflowClient) -> list:
    exps = [e.experiment_id for e in client.search_experiments() if e.name.startswith("sparsebench/")]
    return client.search_runs(exps, "tags.`sb.kind` = 'trial'", max_results=1000) if exps else []


def test_plain_postgresql_uri_selects_psycopg_3():
    """The README's URI form: plain ``postgresql://`` is SQLAlchemy's default driver, psycopg 3 with the
    pinned SQLAlchemy (it was psycopg2 before 2.1), which the test extra installs."""
    from sqlalchemy.engine import make_url

    assert make_url("postgresql://u:p@h:5432/db").get_dialect().driver == "psycopg"
    assert make_url("postgresql+psycopg://u:p@h:5432/db").get_dialect().driver == "psycopg"
    import psycopg  # noqa: F401  (the pinned driver)


def test_sweep_on_a_postgresql_backed_mlflow_server_interrupts_resumes_and_builds_the_board(mlflow_server,
                                                                                          tmp_path):
    uri, artifacts = mlflow_server
    client, workdir = MlflowClient(uri), tmp_path / "client"
    workdir.mkdir()
    run = cli("run", "--task", "tiny-mlp", "--method", "test-slow", "--sparsity", "0.5", "--seed", *SEEDS,
              "--set", f"seconds={TRIAL_SECONDS}", "--plugins", str(TEST_PLUGINS), "--tracking-uri", uri)

    # the first sweep, interrupted (Ctrl-C, as a terminal sends it) once the server holds a completed trial
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as out:
        proc = subprocess.Popen(run, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                env=cli_env(), cwd=workdir, start_new_session=True)
    try:
        def one_completed():
            assert proc.poll() is None, f"the sweep ended before a trial finished:\n{first_log.read_text()}"
            return any(r.data.tags.get("sb.status") == "completed" for r in trial_runs(client))

        wait_until(one_completed, 180, "a completed trial on the server", first_log)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(120)
    finally:
        stop_group(proc)
    out = first_log.read_text()
    assert proc.returncode == 130, out
    assert "interrupted (run again to resume)" in out and "to resume, run again: sparsebench run" in out, out
    assert "Traceback" not in out, out
    first = [r for r in trial_runs(client) if r.data.tags.get("sb.status") == "completed"]
    assert 1 <= len(first) < len(SEEDS)

    # the same command again: only the trials not completed run
    second = subprocess.run(run, capture_output=True, text=True, env=cli_env(), cwd=workdir, timeout=300)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    assert f"{len(SEEDS)} trials, {len(SEEDS) - len(first)} to run, {len(first)} already done" in out, out

    # every trial completed exactly once; nothing left running
    runs = trial_runs(client)
    completed = [r for r in runs if r.data.tags["sb.status"] == "completed"]
    config_ids = [r.data.tags["sb.config_id"] for r in completed]
    assert len(config_ids) == len(set(config_ids)) == len(SEEDS), [(r.info.run_id, r.data.tags) for r in runs]
    assert {r.data.params["seed"] for r in completed} == set(SEEDS)
    assert all(r.data.tags["sb.status"] in ("completed", "interrupted") for r in runs)
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]

    # two workers: two trials of the first sweep ran at the same time
    spans = sorted((r.info.start_time, r.info.end_time) for r in runs if r.info.end_time)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), spans

    # layers.json went through the server into the artifacts destination, not into a worker's folder
    for r in completed:
        assert r.info.artifact_uri.startswith("mlflow-artifacts:"), r.info.artifact_uri
        assert "layers.json" in [a.path for a in client.list_artifacts(r.info.run_id)]
        stored = list(artifacts.rglob(f"{r.info.run_id}/artifacts/layers.json"))
        assert len(stored) == 1, sorted(artifacts.rglob("*"))
    assert not list(workdir.rglob("layers.json")) and not (workdir / "mlartifacts").exists()
    assert not (workdir / "mlflow.db").exists()

    # the leaderboard, from the server alone
    board = subprocess.run(cli("leaderboard", "--tracking-uri", uri, "--out", str(tmp_path / "board")),
                           capture_output=True, text=True, env=cli_env(), cwd=workdir, timeout=180)
    assert board.returncode == 0, board.stdout + board.stderr
    csv = pd.read_csv(tmp_path / "board" / "results.csv")
    cell = csv[(csv["method_name"] == "test-slow") & (csv["sparsity"] == 0.5)]
    assert len(cell) == 1 and cell.iloc[0]["n"] == len(SEEDS), csv
    assert cell.iloc[0]["method"] == f"test-slow (seconds={TRIAL_SECONDS})"  # a --set run is a cell of its own
    text = (tmp_path / "board" / "README.md").read_text()
    assert "tiny-mlp" in text and "test-slow" in text
    assert uri in (tmp_path / "board" / "index.html").read_text()  # run links point at this server
