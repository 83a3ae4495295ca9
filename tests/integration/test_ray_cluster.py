"""A real two-node Ray cluster on this machine: trials run on both nodes, a node killed mid-sweep
loses only time (its trials are re-run by the next sweep), and the test stops exactly what it began."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparsebench.running import tracking

from conftest import TEST_PLUGINS

pytestmark = [pytest.mark.slow, pytest.mark.integration]

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(args: list[str], env: dict) -> subprocess.Popen:
    """``ray start --block`` in its own process group: killing the group takes the node down."""
    return subprocess.Popen([str(RAY), "start", "--block", "--num-cpus", "1", "--object-store-memory", str(10**8),
                             "--disable-usage-stats", *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def kill_node(node: subprocess.Popen) -> None:
    try:
        os.killpg(node.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    node.wait(timeout=60)


def wait_for_nodes(address: str, count: int, env: dict, timeout: float = 180) -> dict[str, str]:
    """Custom resource -> node id of the cluster's live nodes, once ``count`` of them are up."""
    probe = ("import json, ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
             "print(json.dumps({r: n['NodeID'] for n in ray.nodes() if n['Alive'] for r in n['Resources'] "
             "if r.endswith('_node')}))")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-c", probe, address], env=env, capture_output=True, text=True)
        if out.returncode == 0 and len(found := json.loads(out.stdout.strip().splitlines()[-1])) == count:
            return found
        time.sleep(2)
    raise TimeoutError(f"the cluster at {address} did not reach {count} nodes")


@pytest.fixture
def cluster(tmp_path):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = start_node(["--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--include-dashboard",
                       "false", "--resources", json.dumps({"head_node": 1})], env)
    nodes = [head]
    try:
        wait_for_nodes(address, 1, env)
        nodes.append(start_node(["--address", address, "--node-ip-address", "127.0.0.1",
                                 "--resources", json.dumps({"second_node": 1})], env))
        ids = wait_for_nodes(address, 2, env)
        yield address, nodes, ids, env
    finally:
        for node in reversed(nodes):
            kill_node(node)


def test_a_sweep_spreads_over_two_nodes_and_reruns_what_a_lost_node_held(cluster, tmp_path):
    address, nodes, ids, env = cluster
    second = ids["second_node"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "sparsebench.cli", "run", "--task", "tiny-mlp", "--method", "test-slow",
               "--sparsity", "0.5", "0.6", "0.7", "0.8", "--set", "seconds=10", "--address", address,
               "--tracking-uri", uri, "--plugins", str(TEST_PLUGINS)]
    sweep = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:  # once a trial runs on the second node, the node is lost
        deadline, running_there = time.monotonic() + 240, False
        while not running_there and time.monotonic() < deadline and sweep.poll() is None:
            time.sleep(1)
            runs = tracking.runs_frame(uri) if (tmp_path / "mlflow.db").exists() else None
            if runs is not None and not runs.empty and "tags.sb.node" in runs:
                running_there = ((runs["tags.sb.status"] == "running") & (runs["tags.sb.node"] == second)).any()
        assert running_there, "no trial ran on the second node"
        kill_node(nodes[1])
        output = sweep.communicate(timeout=600)[0]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    runs = tracking.runs_frame(uri)
    assert runs["tags.sb.node"].nunique() == 2, output
    lost = runs[runs["tags.sb.failure"] == "infrastructure"]
    assert len(lost) >= 1 and set(lost["tags.sb.node"]) == {second}, output

    # the next sweep re-runs the lost trials and keeps the rest; without --address it starts a Ray of its
    # own even though a `ray start` cluster runs here (Ray's ray.init() alone would attach to that one)
    local = [c for c in command if c not in ("--address", address)]
    again = subprocess.run(local, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    runs = tracking.runs_frame(uri)
    completed = runs[runs["tags.sb.status"] == "completed"]
    assert completed["tags.sb.config_id"].nunique() == 4 and len(completed) == 4
    rerun = completed[completed["tags.sb.config_id"].isin(lost["tags.sb.config_id"])]
    assert not set(rerun["tags.sb.node"]) & set(ids.values())
