"""Faults of the runtime (issue 36, items 4-8): hung trials and plugins, killed drivers, read-only or
full disks, a server that is not MLflow, concurrent boards, string choices, sweep outcomes.

Real stores (SQLite files), real plugins (tests/plugins), real processes; no mocks.
"""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sparsebench import cli
from sparsebench.core import catalog, registry
from sparsebench.core.hparams import check_hparams, schema
from sparsebench.errors import StoreError
from sparsebench.running import claims, tracking
from sparsebench.running.sweep import describe, execute, finished_since, pending, plan, trial_config
from sparsebench.running.trial import TrialSpec

from conftest import TEST_PLUGINS

ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}


def sparsebench(*argv, cwd, env=None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sparsebench.cli", *argv], cwd=cwd, env={**ENV, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _ended() -> int:
    """The pid of a process of this host that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


# --- 8: string choices, the summary of concurrent sweeps ---------------------------------------------------

def test_a_string_hyperparameter_with_fixed_values_is_checked_before_any_plugin_loads():
    listed = catalog.load()
    with pytest.raises(ValueError, match=r"method 'gmp': rule must be one of 'uniform', 'global', got 'bogus'"):
        listed.check(["lenet300-mnist"], ["quick"], ["gmp"], [0.9], {"rule": "bogus"})
    listed.check(["lenet300-mnist"], ["quick"], ["gmp"], [0.9], {"rule": "global"})
    fields = schema(registry.METHODS.get("lottery")[0])
    assert fields["rewind"]["bounds"] == ["weights", "lr"]
    with pytest.raises(ValueError, match="rewind must be one of"):
        check_hparams("lottery", fields, {"rewind": "both"})


def test_a_sweeps_summary_counts_only_its_own_runs(tracking_uri):
    specs = [TrialSpec("tiny-mlp", "random", 0.5), TrialSpec("tiny-mlp", "random", 0.7)]
    mine = tracking.start_sweep(tracking_uri, ["tiny-mlp"], "mine", {})
    other = tracking.start_sweep(tracking_uri, ["tiny-mlp"], "other", {})  # started as well, the same grid
    for parent, spec in ((mine, specs[0]), (other, specs[1])):
        run = tracking.TrialRun(tracking_uri, spec, spec.config_id(), describe(spec), parent["tiny-mlp"])
        run.finish({"status": "failed", "reason": "method 'random' raised", "metrics": {}})
    assert finished_since(specs, tracking_uri, mine) == {specs[0].config_id(): "failed"}
    assert finished_since(specs, tracking_uri, other) == {specs[1].config_id(): "failed"}


# --- 5: a killed driver leaves no ghost ----------------------------------------------------------------------

def claim(uri, spec, owner: dict, parent=None):
    return tracking.TrialRun(uri, spec, spec.config_id(), {**describe(spec), **owner}, parent)


def test_a_claim_of_a_dead_owner_on_this_host_is_taken_over_at_once(tracking_uri):
    spec = TrialSpec("tiny-mlp", "random", 0.5)
    ghost = claim(tracking_uri, spec, {**claims.owner(), "owner_pid": str(_ended())})  # its heartbeat is fresh
    taker = claim(tracking_uri, spec, claims.owner())
    assert taker.rival() is None  # a worker that starts the trial now is not stopped by it
    taker.withdraw()
    assert pending([spec], tracking_uri) == ([spec], 0)
    assert MlflowClient(tracking_uri).get_run(ghost.run_id).data.tags["sb.status"] == "interrupted"


def test_a_live_owners_claim_is_left_to_it_and_says_who_and_until_when(tracking_uri):
    spec = TrialSpec("tiny-mlp", "random", 0.5)
    live = claim(tracking_uri, spec, claims.owner())
    far = TrialSpec("tiny-mlp", "random", 0.7)
    claim(tracking_uri, far, {"owner_pid": "4242", "owner_host": "elsewhere", "owner_start": ""})
    holders = {}
    assert pending([spec, far], tracking_uri, holders=holders) == ([], 2)
    assert holders[spec.config_id()].startswith(f"sweep pid {os.getpid()} on host {socket.gethostname()}; "
                                                "it expires at ")
    assert holders[far.config_id()].startswith("sweep pid 4242 on host elsewhere; it expires at ")
    assert holders[far.config_id()].endswith(" if that sweep is dead")
    assert MlflowClient(tracking_uri).get_run(live.run_id).data.tags["sb.status"] == "running"


def test_a_dead_drivers_sweep_runs_are_ended_at_once(tracking_uri):
    dead = tracking.start_sweep(tracking_uri, ["tiny-mlp"], "killed", {})
    client = MlflowClient(tracking_uri)
    client.set_tag(dead["tiny-mlp"], "sb.owner_pid", str(_ended()))  # its heartbeat is fresh
    live = tracking.start_sweep(tracking_uri, ["tiny-mlp"], "live", {})
    assert tracking.end_dead_sweeps(tracking_uri, ["tiny-mlp"]) == 1
    assert client.get_run(dead["tiny-mlp"]).info.status == "KILLED"
    assert client.get_run(live["tiny-mlp"]).info.status == "RUNNING"


def test_a_reused_pid_is_not_the_owner():
    tags = {f"sb.{k}": v for k, v in claims.owner().items()}
    assert not claims.owner_dead(tags)
    assert claims.owner_dead({**tags, "sb.owner_start": "1"})  # this pid, but a process started at another time
    assert not claims.owner_dead({**tags, "sb.owner_host": "elsewhere", "sb.owner_pid": str(_ended())})


# --- 4: hung trials and hung plugins --------------------------------------------------------------------------

def test_every_profile_states_a_trial_budget():
    from sparsebench.core.task import Recipe

    for name in registry.TASKS.names():
        cls = registry.TASKS.get(name)[0]
        for profile in cls.profiles:
            assert cls.trial_budget(profile) > 0
    assert registry.TASKS.get("tiny-mlp")[0].trial_budget("quick") == 2 * 3600
    recipe = Recipe(batch_size=1, lr=0.1, epochs=1, budget_s=60)
    assert recipe.budget_s == 60 and "budget" not in repr(recipe)  # no part of what keys stored trainings
    with pytest.raises(ValueError, match="budget_s"):
        Recipe(batch_size=1, lr=0.1, epochs=1, budget_s=0)


HANGS_AT_IMPORT = "import time\ntime.sleep(600)\n"


def test_a_plugin_that_hangs_at_import_is_named_and_listed_as_broken(tmp_path):
    (tmp_path / "plugins" / "methods").mkdir(parents=True)
    hung = tmp_path / "plugins" / "methods" / "hangs_at_import.py"
    hung.write_text(HANGS_AT_IMPORT)
    env = {"SPARSEBENCH_IMPORT_TIMEOUT": "3", "SPARSEBENCH_CACHE": str(tmp_path / "cache")}
    listing = sparsebench("list", "--plugins", str(tmp_path / "plugins"), cwd=tmp_path, env=env)
    out = listing.communicate(timeout=300)[0]
    assert listing.returncode == 0, out
    assert f"BROKEN {hung}: hangs: its import did not finish within 3 s" in out and "magnitude" in out
    run = sparsebench("run", "--plugins", str(tmp_path / "plugins"), "--task", "tiny-mlp", "--method", "hangs",
                      "--sparsity", "0.5", cwd=tmp_path, env=env)
    out = run.communicate(timeout=300)[0]
    assert run.returncode == 2 and "unknown method 'hangs'" in out and str(hung) in out, out


@pytest.mark.slow
def test_a_killed_driver_is_taken_over_at_once_and_a_hung_trial_ends_as_a_timeout(tmp_path):
    """A driver SIGKILLed while its trial hangs; the re-run at once takes the trial over (no wait for the
    heartbeat to lapse), ends it at its budget as a failure of kind timeout, goes on with the next trial,
    and exits non-zero as every trial failed; a third run finds everything done."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    grid = ["--task", "tiny-mlp", "--sparsity", "0.5", "--tracking-uri", uri, "--plugins", str(TEST_PLUGINS)]
    first = sparsebench("run", "--method", "test-hangs", *grid, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            runs = tracking.runs_frame(uri) if (tmp_path / "mlflow.db").exists() else pd.DataFrame()
            if not runs.empty and (runs["tags.sb.status"] == "running").any():
                break
            assert first.poll() is None, first.communicate()[0]
            time.sleep(1)
        else:
            pytest.fail("the first sweep never claimed its trial")
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = sparsebench("run", "--method", "test-hangs", "test-raises", *grid, "--trial-timeout", "8",
                             cwd=tmp_path)
        out = second.communicate(timeout=300)[0]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)  # what the killed driver started (its local Ray)
    assert second.returncode == 1 and "left to" not in out and "every trial that ran failed" in out, out
    runs = tracking.runs_frame(uri)
    by_method = runs.groupby("tags.sb.method")["tags.sb.status"].apply(sorted).to_dict()
    assert by_method == {"test-hangs": ["failed", "interrupted"], "test-raises": ["failed"]}, by_method
    hung = runs[(runs["tags.sb.method"] == "test-hangs") & (runs["tags.sb.status"] == "failed")].iloc[0]
    assert hung["tags.sb.failure"] == "timeout" and "budget of 8 s" in hung["tags.sb.reason"]
    parents = MlflowClient(uri).search_runs([runs["experiment_id"].iloc[0]], "tags.`sb.kind` = 'sweep'")
    assert len(parents) == 2 and all(p.info.status != "RUNNING" for p in parents)  # the killed one's ended too
    third = sparsebench("run", "--method", "test-hangs", "test-raises", *grid, cwd=tmp_path)
    out = third.communicate(timeout=300)[0]
    assert third.returncode == 0 and "2 already done" in out, out


# --- 6: clear errors before work starts -----------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here (root and CAP_SYS_ADMIN needed): {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def one_line_error(capsys, argv, env: dict, monkeypatch) -> str:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, code, err)
    return err


def test_a_read_only_store_or_cache_is_one_line_for_every_command(tmp_path, capsys, monkeypatch):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        uri = f"sqlite:///{ro / 'mlflow.db'}"
        for argv in (["leaderboard", "--out", str(tmp_path / "board")], ["export", "--out", str(tmp_path / "b")],
                     ["import", str(tmp_path / "b")],
                     ["run", "--task", "tiny-mlp", "--method", "dense"]):
            err = one_line_error(capsys, [*argv, "--tracking-uri", uri], {}, monkeypatch)
            assert f"cannot write the MLflow store's folder {ro}" in err, err
        for argv in (["list"], ["run", "--task", "tiny-mlp", "--method", "dense",
                                "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]):
            err = one_line_error(capsys, argv, {"SPARSEBENCH_CACHE": str(ro)}, monkeypatch)
            assert f"cannot write the cache {ro}" in err and "SPARSEBENCH_CACHE" in err, err
    assert not (tmp_path / "mlflow.db").exists()


def test_a_full_disk_at_start_is_one_line(tmp_path, capsys, monkeypatch):
    with tmpfs(tmp_path / "full", "size=12m") as full:
        subprocess.run(["dd", "if=/dev/zero", f"of={full / 'filler'}", "bs=1M", "count=100"], capture_output=True)
        argv = ["run", "--task", "tiny-mlp", "--method", "dense"]
        err = one_line_error(capsys, [*argv, "--tracking-uri", f"sqlite:///{full / 'mlflow.db'}"], {}, monkeypatch)
        assert "MB free" in err and str(full) in err
        err = one_line_error(capsys, ["list"], {"SPARSEBENCH_CACHE": str(full / "cache")}, monkeypatch)
        assert "cannot write the cache" in err or "MB free" in err, err


def test_a_tracking_uri_that_is_not_mlflow_is_one_line(tmp_path, capsys, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        uri = f"http://127.0.0.1:{port}"
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
        with pytest.raises(StoreError, match="is not an MLflow tracking server"):
            tracking.open_store(uri)
        (tmp_path / "api" / "2.0" / "mlflow" / "experiments").mkdir(parents=True)
        (tmp_path / "api" / "2.0" / "mlflow" / "experiments" / "search").write_text("<html>hello</html>")
        err = one_line_error(capsys, ["leaderboard", "--tracking-uri", uri, "--out", str(tmp_path / "b")], {},
                             monkeypatch)
        assert f"{uri} is not an MLflow tracking server" in err
    finally:
        server.kill()
        server.wait()


# --- 7: concurrent writers of one board -----------------------------------------------------------------------

def store_of(root: Path, methods: list[str], sparsities: list[float]) -> str:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    root.mkdir()
    context = {"uri": uri, "data_root": None, "parents": {}, "device": "cpu", "plugin_roots": [str(TEST_PLUGINS)]}
    for spec in plan(["tiny-mlp"], methods, sparsities, [0]):
        execute(trial_config(spec, context))
    return uri


@pytest.mark.slow
def test_two_boards_built_at_once_into_one_folder_leave_one_whole_board(tmp_path, one_thread):
    from sparsebench.report import board

    stores = [store_of(tmp_path / "a", ["dense"], []), store_of(tmp_path / "b", ["dense", "random"], [0.5])]
    out = tmp_path / "leaderboard"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "tiny-mlp.jsonl").write_text("{}\n")  # the bundle beside the board stays
    with board.locked(out):  # a build waits for the lock before it swaps its board in
        waiting = threading.Thread(target=board.build, args=(stores[0], out))
        waiting.start()
        written = lambda: list(tmp_path.glob(".leaderboard.*/README.md"))  # noqa: E731
        deadline = time.monotonic() + 120
        while not written() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        assert written() and waiting.is_alive() and not (out / "results.csv").exists()
    waiting.join()
    builds = [sparsebench("leaderboard", "--tracking-uri", uri, "--out", str(out), cwd=tmp_path) for uri in stores]
    outputs = [b.communicate(timeout=300)[0] for b in builds]
    assert [b.returncode for b in builds] == [0, 0], outputs
    csv = pd.read_csv(out / "results.csv")
    readme = (out / "README.md").read_text()
    methods = set(csv["method"])
    assert methods in ({"dense"}, {"dense", "random"}), methods
    assert ("random" in readme) == ("random" in methods) and len(csv) == len(methods)
    assert (out / "runs" / "tiny-mlp.jsonl").read_text() == "{}\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".leaderboard.") and p.is_dir()]  # none left
