"""Ranks that respect noise, the answer first (issue 37). Hand-made cells and runs (TEST DATA)."""
import numpy as np
import pandas as pd
from scipy.stats import ttest_ind

from sparsebench.report import ranking, recommend, summary, tables


def cell_rows(rows, **extra):
    """(task, profile, method, sparsity, mean, std, n) -> aggregate()-like rows."""
    frame = pd.DataFrame(rows, columns=["task", "profile", "method", "sparsity", "mean", "std", "n"])
    defaults = dict(variant="official", track="default", metric="accuracy", higher_is_better=True, collapsed=0,
                    collapse="", at_chance=False, family="cnn", train_cost_rel=1.0, speedup=float("nan"),
                    run_ids=[f"r{i}" for i in range(len(frame))], experiment_id="1", when="after", criterion="magnitude")
    return frame.assign(**{**defaults, **extra})


def test_welch_p_is_scipys_welch_test():
    a, b = np.array([69.2, 69.6, 70.2]), np.array([68.1, 69.8, 70.1])
    p = ranking.welch_p(a.mean(), a.std(ddof=1), 3, b.mean(), b.std(ddof=1), 3)
    assert abs(p - ttest_ind(a, b, equal_var=False).pvalue) < 1e-12
    assert ranking.welch_p(5.0, 0.0, 3, 5.0, 0.0, 3) == 1.0 and ranking.welch_p(5.0, 0.0, 3, 4.0, 0.0, 3) == 0.0


def test_methods_within_noise_share_a_rank_and_clearly_different_ones_do_not():
    # RigL vs random ERK at 98 % under medium-decay (the numbers): within noise, one rank
    cells = cell_rows([("t", "p", "rigl", 0.98, 69.66, 0.48, 3), ("t", "p", "random-erk", 0.98, 69.32, 1.06, 3),
                       ("t", "p", "snip", 0.98, 60.0, 0.5, 3), ("t", "p", "grasp", 0.98, 59.8, 0.4, 3),
                       ("t", "p", "synflow", 0.98, 50.0, 0.3, 3)])
    ranks = dict(zip(cells["method"], ranking.group_ranks(cells, higher_is_better=True)))
    assert ranks == {"rigl": 1.0, "random-erk": 1.0, "snip": 3.0, "grasp": 3.0, "synflow": 5.0}
    # lower is better: the smallest perplexity leads
    lm = cell_rows([("t", "p", "a", 0.5, 100.0, 0.5, 3), ("t", "p", "b", 0.5, 120.0, 0.5, 3)])
    assert ranking.group_ranks(lm, higher_is_better=False).tolist() == [1.0, 2.0]


def test_a_cell_with_fewer_than_three_seeds_is_shown_but_not_ranked():
    cells = cell_rows([("t", "p", "a", 0.9, 95.0, float("nan"), 1), ("t", "p", "b", 0.9, 90.0, 0.1, 3),
                       ("t", "p", "c", 0.9, 80.0, 0.1, 3)])
    [section] = tables.sections(cells)
    rows = section.rows.set_index("method")
    assert pd.isna(rows.loc["a", "rank"]) and rows.loc["a", "unranked"] == "n < 3"
    assert rows.loc[["b", "c"], "rank"].tolist() == [1.0, 2.0]  # a's better mean does not take the lead
    grid = tables.results_grid(section)
    assert "not ranked (n < 3)" in grid.loc["a", "90%"] and grid.loc["b", "90%"].startswith("**90.00 ± 0.10")
    assert not grid.loc["c", "90%"].startswith("**")


def test_identical_methods_are_merged_into_one_row():
    cells = cell_rows([("t", "p", "magnitude", 0.9, 97.0, 0.1, 3), ("t", "p", "magnitude-finetune", 0.9, 97.0, 0.1, 3),
                       ("t", "p", "magnitude", 0.75, 97.5, 0.1, 3),  # where only one of them ran
                       ("t", "p", "snip", 0.9, 96.0, 0.1, 3), ("t", "p", "snip-like", 0.9, 96.0, 0.2, 3)])
    [section] = tables.sections(cells)
    assert section.methods == ["magnitude = magnitude-finetune", "snip", "snip-like"]  # another std: not the same
    merged = section.rows[section.rows["method"] == "magnitude = magnitude-finetune"]
    assert sorted(merged["sparsity"]) == [0.75, 0.9]
    assert section.merged == {"magnitude = magnitude-finetune": ["magnitude", "magnitude-finetune"]}


def test_summary_ranks_never_average_across_families():
    # x leads the transformer, trails the rnn: averaged together it would tie for a misleading first
    rows = [("lm-a", "q", "x", 0.5, 10.0, 0.1, 3), ("lm-a", "q", "y", 0.5, 20.0, 0.1, 3),
            ("rnn-a", "q", "x", 0.5, 30.0, 0.1, 3), ("rnn-a", "q", "y", 0.5, 20.0, 0.1, 3)]
    table = cell_rows(rows, higher_is_better=False).assign(family=["transformer"] * 2 + ["rnn"] * 2)
    ranked = summary.ranks(table)
    assert set(ranked["comparison"]) == {"lm-a", "rnn-a"}
    by = ranked.set_index(["family", "method"])["rank"]
    assert by[("transformer", "x")] == 1.0 and by[("rnn", "x")] == 2.0
    assert summary.rank_text(ranked.iloc[0]) in ("1.00 · 1 task", "2.00 · 1 task")  # not "1.00 (1)"
    few = summary.ranks(cell_rows([("t", "q", "x", 0.5, 1.0, 0.1, 2), ("t", "q", "y", 0.5, 2.0, 0.1, 3)]))
    assert summary.rank_text(few.set_index("method").loc["x"]) == "n < 3 on 1 of 1 task"
    none = summary.ranks(cell_rows([("t", "q", "x", 0.5, 1.0, 0.1, 1), ("t", "q", "y", 0.5, 2.0, 0.1, 2)]))
    assert none.empty  # a comparison where nothing is ranked has no table


def test_the_recommendation_takes_the_leaders_group_of_the_longest_budget():
    rows = [("resnet", "quick", "a", 0.9, 50.0, 0.1, 3), ("resnet", "quick", "b", 0.9, 40.0, 0.1, 3),
            ("resnet", "medium", "a", 0.9, 80.0, 0.5, 3), ("resnet", "medium", "b", 0.9, 80.2, 0.5, 3),
            ("resnet", "medium", "c", 0.9, 70.0, 0.5, 3)]
    table = cell_rows(rows)
    dense = cell_rows([("resnet", "medium", "dense", 0.0, 82.0, 0.2, 3)])
    [entry] = recommend.recommendations(tables.sections(pd.concat([table, dense], ignore_index=True)))
    assert entry["section"].profile == "medium" and entry["ranked"]
    lines = recommend.leader_lines(entry)
    assert [x["method"] for x in lines] == ["b", "a"] and [x["delta"] for x in lines] == ["-1.80", "-2.00"]
    [quick_only] = recommend.recommendations(tables.sections(table[table["profile"] == "quick"]))
    assert recommend.leader_lines(quick_only)[0]["delta"] == "no dense run"


def test_a_cell_off_its_target_sparsity_is_recommended_nowhere():
    table = cell_rows([("resnet", "medium", "penalty", 0.9, 85.0, 0.1, 3), ("resnet", "medium", "b", 0.9, 80.0, 0.1, 3),
                       ("resnet", "full", "penalty", 0.74, 90.0, float("nan"), 1)])
    table["off_target"] = table["method"] == "penalty"  # reached far less sparsity than asked
    entries = recommend.recommendations(tables.sections(table))
    assert [(e["sparsity"], list(e["leaders"]["method"])) for e in entries] == [(0.9, ["b"])]


def test_plots_keep_the_dense_reference_in_view_and_draw_error_bars(tmp_path, monkeypatch):
    from sparsebench.report import plots

    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.setdefault(path.name, fig) and path)
    # a within-noise gap (RigL vs ERK at 98 %): zoomed to the two means it would look large
    rows = cell_rows([("t", "p", "rigl", 0.98, 69.66, 0.48, 3), ("t", "p", "random-erk", 0.98, 69.32, 1.06, 3),
                      ("t", "p", "rigl", 0.9, 80.0, 0.3, 3), ("t", "p", "random-erk", 0.9, 79.0, 0.2, 2)])
    dense = cell_rows([("t", "p", "dense", 0.0, 85.5, 0.2, 3)])
    [section] = tables.sections(pd.concat([rows, dense], ignore_index=True))
    plots.section_plot(section, tmp_path / "a.png")
    plots.pareto_plot(section, tmp_path / "b.png")
    for name in ("a.png", "b.png"):
        low, high = drawn[name].axes[0].get_ylim()
        assert low <= 69.66 - 0.48 and high >= 85.5  # the error bars and the dense reference in view
    legend = [t.get_text() for t in drawn["a.png"].axes[0].get_legend().get_texts()]
    assert "hollow: n < 3, not ranked" in legend  # random-erk at 90 % has two seeds
    [without] = tables.sections(rows)
    plots.section_plot(without, tmp_path / "c.png")
    assert "no dense run under this profile" in drawn["c.png"].get_suptitle()


def test_a_long_plot_title_is_wrapped_inside_the_figure():
    from sparsebench.report import plots
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7.2, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], label="a method with a long name")
    plots.legend_beside(fig, ax)
    plots.heading(fig, "transformer-wikitext2 — profile pretrained — one-shot track: pruned after training, "
                       "no retraining\n(no dense run under this profile)")
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent()
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width  # over the axes alone it ran off the left edge
    assert fig.get_suptitle().count("\n") == 2  # wrapped once, and the second line kept
