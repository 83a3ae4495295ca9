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
