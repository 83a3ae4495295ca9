"""The command line's grids: suites, their parts, and plain option grids."""
import argparse

import pytest

from sparsebench import cli, registry
from sparsebench.core import catalog
from sparsebench.running.suites import SUITES


def grid(*argv):
    parser = argparse.ArgumentParser()
    for flag, kind in (("--task", str), ("--method", str), ("--sparsity", float), ("--seed", int)):
        parser.add_argument(flag, nargs="+", type=kind)
    parser.add_argument("--suite")
    parser.add_argument("--profile")
    parser.add_argument("--set", nargs="*", default=[])
    parser.add_argument("--tune", type=int)
    args = parser.parse_args(argv)
    return cli._specs(args, cli._blocks(args, catalog.load()))


def specs(*argv):
    return grid(*argv)[0]


@pytest.fixture(autouse=True, scope="module")
def discovered():
    registry.discover()


def test_every_suite_names_known_plugins():
    for name in SUITES:
        assert any(grid("--suite", name)), name


def test_suite_options_keep_part_of_it_and_profile_replaces():
    whole = specs("--suite", "default")
    part = specs("--suite", "default", "--task", "lenet300-mnist", "--method", "dense", "snip", "--sparsity", "0.9")
    assert {(s.task, s.method, s.sparsity) for s in part} == {("lenet300-mnist", "dense", 0.0),
                                                              ("lenet300-mnist", "snip", 0.9)}
    assert {s.seed for s in part} == {0, 1, 2}
    assert set(map(lambda s: s.config_id(), part)) <= set(map(lambda s: s.config_id(), whole))
    assert {s.profile for s in specs("--suite", "default", "--task", "lstm-ptb", "--profile", "full")} == {"full"}


def test_a_suite_block_sets_its_methods_hyperparameters_and_set_overrides_them(monkeypatch):
    monkeypatch.setitem(SUITES, "probe", [
        {"tasks": ["lenet300-mnist"], "methods": ["dense"], "sparsities": [], "seeds": [0], "profile": "quick"},
        {"tasks": ["lenet300-mnist"], "methods": ["l0"], "sparsities": [0.9], "seeds": [0], "profile": "quick",
         "set": {"lambda_scale": 3.0}}])
    planned = {s.method: s for s in specs("--suite", "probe")}
    assert planned["l0"].hparams == {"lambda_scale": 3.0} and planned["dense"].hparams == {}
    overridden = {s.method: s for s in specs("--suite", "probe", "--method", "l0", "--set", "lambda_scale=5")}
    assert overridden["l0"].hparams == {"lambda_scale": 5} and overridden["l0"].config_id() != planned["l0"].config_id()
    monkeypatch.setitem(SUITES, "probe", [{**SUITES["probe"][1], "set": {"no_such": 1}}])
    with pytest.raises(ValueError, match="no hyperparameter no_such"):
        specs("--suite", "probe")


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


def test_tune_makes_studies_of_the_pruning_methods_and_keeps_dense_on_the_default_track():
    trials, studies = grid("--task", "lenet300-mnist", "--method", "dense", "rigl", "--sparsity", "0.9",
                           "--seed", "0", "1", "--tune", "4")
    assert [(s.method, s.track) for s in trials] == [("dense", "default"), ("dense", "default")]
    assert [(s.method, s.sparsity, s.budget, s.seeds) for s in studies] == [("rigl", 0.9, 4, (0, 1))]
    with pytest.raises(ValueError, match="at least 1"):
        grid("--task", "lenet300-mnist", "--method", "rigl", "--sparsity", "0.9", "--tune", "0")


def test_the_tuned_suite_tunes_every_pruning_method():
    trials, studies = grid("--suite", "tuned")
    assert {s.method for s in trials} == {"dense"} and studies
    assert all(s.budget == 8 and s.seeds == (0, 1, 2) for s in studies)


def test_the_posttraining_suite_prunes_trained_models_once_on_the_one_shot_track():
    trials = specs("--suite", "posttraining")
    dense = [s for s in trials if s.method == "dense"]
    pruned = [s for s in trials if s.method != "dense"]
    assert {s.task for s in dense} == {s.task for s in pruned} and all(s.track == "default" for s in dense)
    assert pruned and all(s.track == "one-shot" for s in pruned)
    assert {s.sparsity for s in pruned} == {0.5, 0.7, 0.9}
    # every dense training (a task and seed) runs before the trials that reuse it (else two workers train it)
    first = {(s.task, s.seed): i for i, s in reversed(list(enumerate(trials)))}
    assert all(first[s.task, s.seed] == i for i, s in enumerate(trials) if s.method == "dense")


def test_the_one_shot_track_holds_only_pruning_without_retraining():
    from sparsebench.running.trial import TrialSpec

    assert TrialSpec("lenet300-mnist", "wanda", 0.5, track="one-shot").track == "one-shot"
    assert TrialSpec("lenet300-mnist", "wanda-retrain", 0.5, track="one-shot", hparams={"retrain": "none"})
    for method in ("gmp", "wanda-retrain", "magnitude"):
        with pytest.raises(ValueError, match="one-shot track"):
            TrialSpec("lenet300-mnist", method, 0.5, track="one-shot")


def test_the_structured_suite_compares_structures_at_the_same_targets():
    trials = specs("--suite", "structured")
    assert {(s.method, s.sparsity) for s in trials if s.method == "nm-magnitude"} == {("nm-magnitude", 0.5)}
    by_target = {s.sparsity for s in trials if s.method in ("l1-filter", "magnitude")}
    assert by_target == {0.5, 0.75}


def test_a_plain_grid_without_dense_says_its_sections_lack_the_reference(capsys):
    specs("--task", "tiny-mlp", "--method", "random", "--sparsity", "0.5")
    assert "no dense reference" in capsys.readouterr().err
    specs("--task", "tiny-mlp", "--method", "dense", "random", "--sparsity", "0.5")
    assert "no dense reference" not in capsys.readouterr().err


def test_list_shows_every_hyperparameter_and_each_tasks_profiles(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "hyperparameters: n=2, m=4, decay=0.0002" in out  # sr-ste: fields with their defaults
    assert "profiles: full, quick, pretrained" in out  # lstm-ptb


def test_help_states_the_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: quick;" in out and "seeds (default: 0;" in out


def test_a_running_sweeps_status_line_counts_trials_and_estimates_the_time_left():
    from sparsebench.running.sweep import status_line

    assert status_line(125, 2, 0, 0, 10) == "sparsebench: 2:05 elapsed: 2 running, 0 done (0 failed), 10 to go"
    assert status_line(3600, 2, 4, 1, 10) == ("sparsebench: 1:00:00 elapsed: 2 running, 4 done (1 failed), 6 to go, "
                                              "about 1:30:00 left")


def test_the_time_left_counts_each_trial_at_its_own_tasks_pace():
    from sparsebench.running.progress import time_left
    from sparsebench.running.trial import plan

    slow = plan(["lenet5-mnist"], ["magnitude"], [0.9], [0])  # a sweep starts its long trials first
    fast = plan(["lenet300-mnist"], ["magnitude", "snip"], [0.5, 0.9], [0, 1])
    done = [(slow[0], "completed"), (fast[0], "completed")]
    assert time_left(slow + fast, [], {}, 2) is None  # nothing finished yet: no estimate
    # 7 fast trials left at 4 s, over 2 running: 14 s, not 7 x the mean of a 60 s and a 4 s trial / 2
    assert time_left(slow + fast, done, {("lenet5-mnist", "quick"): [60.0], ("lenet300-mnist", "quick"): [4.0]},
                     2) == 14.0


def test_check_runs_the_contract_on_one_plugin_file(capsys, tmp_path):
    assert cli.main(["check", "methods/random.py"]) == 0
    out = capsys.readouterr().out
    assert "  random: ok" in out and "  random-structured: ok" in out
    plugin = tmp_path / "mine.py"
    plugin.write_text('''import os
from dataclasses import dataclass
import torch
from sparsebench import Method, register_method

@register_method("mine-peeks")
@dataclass
class Peeks(Method):
    when, criterion, paper = "init", "random", "-"
    def run(self, ctx):
        ctx.masks.prune({n: torch.rand(p.shape) for n, p in ctx.masks.params.items()}, ctx.sparsity / 2)
        ctx.train(steps=2)

@register_method("mine-exits")
@dataclass
class Exits(Method):
    when, criterion, paper = "sometime", "random", "-"
    def run(self, ctx):
        os._exit(5)
''')
    assert cli.main(["check", str(plugin)]) == 1
    out = capsys.readouterr().out
    assert "mine-exits: FAILS" in out and "when = 'sometime'" in out and "ended the process (exit code 5)" in out
    assert "mine-peeks: FAILS" in out and "reached sparsity 0.4" in out
    assert cli.main(["check", str(tmp_path / "absent.py")]) == 2  # a clear error, not a traceback
