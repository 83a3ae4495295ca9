"""The tuning track: search spaces hold the paper defaults, studies are deterministic, a search
runs through real Ray Tune and MLflow, resumes without re-running a configuration, and only the
chosen configuration is evaluated on test."""
import pandas as pd
import pytest

from sparsebench.core import registry
from sparsebench.core.space import Choice, Integer, Uniform, check_space
from sparsebench.report import board, tables
from sparsebench.running import tracking
from sparsebench.running.sweep import plan, run_sweep
from sparsebench.running.trial import TrialSpec, make_method, run_trial
from sparsebench.running.tuning import TUNING_SEED, Study, choose, run_tuning

from conftest import PROJECT_METHODS, TEST_PLUGINS


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.98])
def test_every_method_declares_a_space_holding_its_defaults_or_says_why_not(method_name, sparsity):
    cls, _ = registry.METHODS.get(method_name)
    method = make_method(method_name)
    space = method.space(sparsity)
    assert space or cls.untuned, f"{method_name} declares no search space and gives no reason"
    check_space(method_name, space, method.hparams())  # raises if a range excludes a default


def test_bad_spaces_and_budgets_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="not one of its hyperparameters"):
        check_space("rigl", {"beta": Uniform(0.0, 1.0)}, make_method("rigl").hparams())
    with pytest.raises(ValueError, match="excludes the default"):
        check_space("rigl", {"alpha": Uniform(0.4, 0.6)}, make_method("rigl").hparams())
    with pytest.raises(ValueError, match="low < high"):
        Uniform(1.0, 1.0)
    with pytest.raises(ValueError, match="low > 0"):
        Integer(0, 10, log=True)
    with pytest.raises(ValueError, match="at least two"):
        Choice(1)
    with pytest.raises(ValueError, match=">= 1"):
        Study("tiny-mlp", "quick", "rigl", 0.9, 0)


def test_a_study_starts_from_the_defaults_and_draws_the_same_candidates_every_time():
    study = Study("tiny-mlp", "quick", "rigl", 0.9, 6)
    first, again = study.candidates(), Study("tiny-mlp", "quick", "rigl", 0.9, 6).candidates()
    assert [c.config_id() for c in first] == [c.config_id() for c in again]
    assert first[0].hparams == {"alpha": 0.3, "delta_t": 100}  # the paper's defaults come first
    assert len(first) == 6 and all(c.track == "tuning" and c.seed == TUNING_SEED for c in first)
    assert all(0.1 <= c.hparams["alpha"] <= 0.5 and c.hparams["delta_t"] in (50, 100, 200) for c in first)
    # a larger budget extends the same draws; a method without a space has one candidate
    assert [c.hparams for c in Study("tiny-mlp", "quick", "rigl", 0.9, 8).candidates()[:6]] == [c.hparams for c in first]
    assert len(Study("tiny-mlp", "quick", "random", 0.9, 8).candidates()) == 1
    # the study id names what determines the choice: another budget or space is another study
    assert study.id != Study("tiny-mlp", "quick", "rigl", 0.9, 8).id


def test_a_tuning_trial_never_touches_the_test_split(tiny_log, one_thread):
    spec = TrialSpec("tiny-mlp", "random", 0.5, 0, "quick", track="tuning")
    result = run_trial(spec)
    assert result["status"] == "completed" and tiny_log == []
    assert "final/val_accuracy" in result["metrics"] and not any(k.startswith("final/test") for k in result["metrics"])
    run_trial(TrialSpec("tiny-mlp", "random", 0.5, 0, "quick"))
    assert tiny_log  # the default track evaluates test once
    with pytest.raises(ValueError, match="names its study"):
        TrialSpec("tiny-mlp", "random", 0.5, track="tuned")


@pytest.mark.slow
def test_tuning_through_ray_and_mlflow_resumes_and_tests_only_the_choice(tracking_uri, tmp_path, shared_ray):
    options = dict(uri=tracking_uri, plugin_roots=[str(TEST_PLUGINS)])
    studies = [Study("tiny-mlp", "quick", "test-tunable", 0.5, 5, seeds=(0, 1)),
               Study("tiny-mlp", "quick", "magnitude", 0.5, 3, seeds=(0, 1))]
    candidates = [c for s in studies for c in s.candidates()]
    assert any(c.hparams["x"] > 0.5 for c in studies[0].candidates())  # some configurations fail

    # an earlier search was interrupted after two configurations
    run_sweep(candidates[:2], name="interrupted", **options)
    search, tuned = run_tuning(studies, **options)
    assert search.skipped == 2 and search.completed + search.failed == len(candidates) - 2
    assert search.failed == sum(c.hparams.get("x", 0) > 0.5 for c in candidates[2:]) > 0
    assert tuned.completed == 4

    runs = tracking.runs_frame(tracking_uri)
    tuning = runs[runs["tags.sb.track"] == "tuning"]
    assert len(tuning) == len(candidates) == tuning["tags.sb.config_id"].nunique()  # none ran twice
    assert tuning["metrics.final/test_accuracy"].isna().all()  # the search never saw test
    chosen = runs[runs["tags.sb.track"] == "tuned"]
    assert len(chosen) == 4 and chosen["metrics.final/test_accuracy"].notna().all()
    for study in studies:
        ids = [c.config_id() for c in study.candidates()]
        mine = tuning.set_index("tags.sb.config_id").loc[ids]
        val = mine["metrics.final/val_accuracy"]
        best = study.candidates()[ids.index(val[val == val.max()].index[0])]  # ties: the earlier candidate
        picked = chosen[chosen["params.method"] == study.method]
        assert set(picked["tags.sb.study"]) == {study.id}
        assert (picked["metrics.tuning/best_val"] == val.max()).all()
        for k, v in best.hparams.items():
            assert set(picked[f"params.hp.{k}"]) == {str(v)}
        assert picked["metrics.tuning/search_cost_rel"].iloc[0] == pytest.approx(mine["metrics.cost/train_cost_rel"].sum())

    # run again: everything is done, nothing runs
    search, tuned = run_tuning(studies, **options)
    assert (search.completed, search.failed, tuned.completed) == (0, 0, 0)

    # the board: a tuned section beside the default track's, with the choice and the gain
    run_sweep(plan(["tiny-mlp"], ["dense", "magnitude"], [0.5], [0, 1]), name="default", **options)
    board.build(tracking_uri, tmp_path / "board")
    csv = pd.read_csv(tmp_path / "board" / "results.csv")
    assert set(csv["track"]) == {"default", "tuned"}
    text = (tmp_path / "board" / "README.md").read_text()
    assert "## tiny-mlp — profile `quick` — tuned track" in text and "configurations" in text
    assert "3 of 3" in text and "gain" in text


def test_the_choice_is_the_best_validation_result_and_a_learned_sparsity_must_reach_its_target():
    study = Study("tiny-mlp", "quick", "str", 0.9, 4)
    ids = [c.config_id() for c in study.candidates()]
    runs = pd.DataFrame({"tags.sb.config_id": ids, "tags.sb.status": ["completed"] * 3 + ["failed"],
                         "metrics.final/val_accuracy": [90.0, 97.0, 95.0, float("nan")],
                         "metrics.final/sparsity": [0.91, 0.80, 0.93, float("nan")],  # the best fell short
                         "metrics.cost/train_cost_rel": [1.0, 1.0, 1.0, float("nan")]})
    choice = choose(study, runs)
    assert choice["chosen"] == {k: study.candidates()[2].hparams[k] for k in choice["chosen"]}
    assert choice["note"]["metrics"] == {"tuning/best_val": 95.0, "tuning/search_cost_rel": 3.0}
    assert choice["note"]["tags"]["tuning.failed"] == 1 and choice["note"]["tags"]["tuning.configs"] == 4
    assert choose(study, runs.assign(**{"metrics.final/sparsity": 0.5})) is None
