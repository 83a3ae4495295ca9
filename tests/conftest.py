import inspect
import os
from pathlib import Path

import pytest
import torch

from sparsebench.core import registry

TEST_PLUGINS = Path(__file__).parent / "plugins"

registry.discover()
PROJECT_METHODS = [n for n in registry.METHODS.names()
                   if not inspect.getsourcefile(registry.METHODS.entries[n][0]).startswith(str(TEST_PLUGINS))]
PROJECT_TASKS = [n for n in registry.TASKS.names()
                 if not inspect.getsourcefile(registry.TASKS.entries[n][0]).startswith(str(TEST_PLUGINS))]
registry.discover([str(TEST_PLUGINS)])
# commands run in this process (and their subprocesses) see the test plugins as this process does
os.environ["SPARSEBENCH_PLUGINS"] = os.pathsep.join(
    p for p in [os.environ.get("SPARSEBENCH_PLUGINS", ""), str(TEST_PLUGINS)] if p)


def pytest_generate_tests(metafunc):
    """The conformance suite runs on every discovered method plugin, newcomers included."""
    if "method_name" in metafunc.fixturenames:
        metafunc.parametrize("method_name", PROJECT_METHODS)
    if "task_name" in metafunc.fixturenames:
        metafunc.parametrize("task_name", PROJECT_TASKS)


@pytest.fixture
def tiny_log():
    """The access log of the tiny task's test split, emptied."""
    module = inspect.getmodule(registry.TASKS.get("tiny-mlp")[0])
    module.ACCESS_LOG.clear()
    return module.ACCESS_LOG


@pytest.fixture(scope="session")
def shared_ray():
    """One local Ray for the sweeps run in this process: ``run_sweep`` uses a running Ray as it is
    (a sweep started from the command line starts and stops its own, tested through the CLI)."""
    import ray

    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def tracking_uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def one_thread():
    """Tiny models train fastest, and deterministically, on one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
