"""The leaderboard's tables from a made-up aggregate (TEST DATA): collapsed cells are marked and not
ranked; runs of older plugin versions are left out."""
import pandas as pd

from sparsebench.core import registry
from sparsebench.reporting import leaderboard


def cells(rows):
    keys = ["task", "profile", "variant", "method", "sparsity", "mean", "collapsed"]
    frame = pd.DataFrame(rows, columns=keys)
    return frame.assign(higher_is_better=True, std=float("nan"), n=1, collapse="", track="default")


def test_a_collapsed_cell_is_not_ranked_and_is_marked():
    table = cells([("t1", "quick", "official", "a", 0.98, 40.0, 1),  # best-looking would be wrong: collapsed
                   ("t1", "quick", "official", "b", 0.98, 30.0, 0),
                   ("t1", "quick", "official", "c", 0.98, 20.0, 0)])
    ranked = leaderboard.ranks(table)
    assert dict(zip(ranked["method"], ranked["rank"])) == {"b": 1.0, "c": 2.0}
    assert leaderboard.cell(40.0, float("nan"), 1, 1) == "40.00 (1) ⚠ collapsed 1/1"
    assert leaderboard.cell(40.0, float("nan"), 1, 0) == "40.00 (1)"


def test_runs_of_another_plugin_version_are_superseded():
    current = registry.METHODS.get("snip")[0].version
    runs = pd.DataFrame({"params.method": ["snip", "snip", "not-a-plugin"], "params.task": ["lenet300-mnist"] * 3,
                         "tags.sb.method_version": [current, "0", "7"],
                         "tags.sb.task_version": [registry.TASKS.get("lenet300-mnist")[0].version] * 3})
    assert leaderboard.superseded(runs).tolist() == [False, True, False]


def test_a_one_shot_section_is_named_and_prunes_the_default_tracks_dense_model():
    table = cells([("t1", "pretrained", "official", "dense", 0.0, 5.0, 0),
                   ("t1", "pretrained", "official", "wanda", 0.5, 5.5, 0),
                   ("t1", "pretrained", "official", "obd", 0.5, 6.5, 0)])
    table = table.assign(metric="perplexity", higher_is_better=False,
                         track=["default", "one-shot", "one-shot"])
    [one_shot] = leaderboard.sections(table)  # the dense model alone has no section of its own
    assert one_shot.title == "t1 — profile `pretrained` — one-shot track: pruned after training, no retraining"
    assert one_shot.dense["mean"] == 5.0 and one_shot.methods == ["wanda", "obd"]
