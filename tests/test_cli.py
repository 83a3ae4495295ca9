"""The command line's grids: suites, their parts, and plain option grids."""
import argparse

import pytest

from sparsebench import cli, registry
from sparsebench.running.suites import SUITES


def specs(*argv):
    parser = argparse.ArgumentParser()
    for flag, kind in (("--task", str), ("--method", str), ("--sparsity", float), ("--seed", int)):
        parser.add_argument(flag, nargs="+", type=kind)
    parser.add_argument("--suite")
    parser.add_argument("--profile")
    parser.add_argument("--set", nargs="*", default=[])
    return cli._specs(parser.parse_args(argv))


@pytest.fixture(autouse=True, scope="module")
def discovered():
    registry.discover()


def test_every_suite_names_known_plugins():
    for name in SUITES:
        assert specs("--suite", name), name


def test_suite_options_keep_part_of_it_and_profile_replaces():
    whole = specs("--suite", "default")
    part = specs("--suite", "default", "--task", "lenet300-mnist", "--method", "dense", "snip", "--sparsity", "0.9")
    assert {(s.task, s.method, s.sparsity) for s in part} == {("lenet300-mnist", "dense", 0.0),
                                                              ("lenet300-mnist", "snip", 0.9)}
    assert {s.seed for s in part} == {0, 1, 2}
    assert set(map(lambda s: s.config_id(), part)) <= set(map(lambda s: s.config_id(), whole))
    assert {s.profile for s in specs("--suite", "default", "--task", "lstm-ptb", "--profile", "full")} == {"full"}


def test_suite_without_matching_trials_is_an_error():
    with pytest.raises(ValueError, match="no trial"):
        specs("--suite", "default", "--task", "lstm-ptb", "--method", "lottery")


def test_plain_grid_runs_dense_once_per_seed():
    grid = specs("--task", "tiny-mlp", "--method", "dense", "random", "--sparsity", "0.5", "0.9", "--seed", "0", "1")
    assert sorted((s.method, s.sparsity, s.seed) for s in grid) == [
        ("dense", 0.0, 0), ("dense", 0.0, 1), ("random", 0.5, 0), ("random", 0.5, 1),
        ("random", 0.9, 0), ("random", 0.9, 1)]


def test_dense_alone_needs_no_sparsity_but_pruning_methods_do():
    assert [(s.method, s.sparsity) for s in specs("--task", "tiny-mlp", "--method", "dense")] == [("dense", 0.0)]
    with pytest.raises(ValueError, match="missing: sparsities"):
        specs("--task", "tiny-mlp", "--method", "dense", "snip")
