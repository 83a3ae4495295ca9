"""The tables generator: MLflow runs -> ``leaderboard/README.md`` and ``leaderboard/results.csv``.

Reads every completed trial run with ``mlflow.search_runs`` (nothing else: the leaderboard can
be regenerated at any time), keeps the latest run per config id, and aggregates seeds per task,
profile, dataset variant, method and target sparsity: mean, standard deviation and n.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import tracking

KEYS = ["task", "profile", "variant", "method", "sparsity"]


def trial_table(uri: str) -> pd.DataFrame:
    """One row per completed trial (latest run per config id), with plain column names."""
    runs = tracking.runs_frame(uri)
    if runs.empty:
        return pd.DataFrame()
    runs = runs[runs["tags.sb.status"] == "completed"].sort_values("start_time")
    runs = runs.drop_duplicates("tags.sb.config_id", keep="last")

    def col(name, default=None):
        return runs[name] if name in runs else pd.Series(default, index=runs.index)

    metric_name = col("tags.sb.metric")
    value = pd.Series([runs.at[i, f"metrics.final/test_{m}"] if f"metrics.final/test_{m}" in runs else None
                       for i, m in metric_name.items()], index=runs.index, dtype=float)
    return pd.DataFrame({
        "task": runs["params.task"], "profile": runs["params.profile"],
        "variant": col("tags.sb.dataset_variant", "").fillna("").replace("", "official"),
        "method": runs["params.method"], "sparsity": runs["params.sparsity"].astype(float),
        "seed": runs["params.seed"].astype(int), "metric": metric_name,
        "higher_is_better": col("tags.sb.higher_is_better") == "True", "value": value,
        "sparsity_achieved": col("metrics.final/sparsity"), "train_cost_rel": col("metrics.cost/train_cost_rel"),
        "inference_flops_rel": col("metrics.inference/flops_rel"), "when": col("tags.sb.when"),
        "criterion": col("tags.sb.criterion"), "run_id": runs["run_id"],
    }).reset_index(drop=True)


def aggregate(trials: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n over seeds for each task, profile, variant, method and sparsity."""
    grouped = trials.groupby(KEYS, dropna=False)
    out = grouped.agg(metric=("metric", "first"), higher_is_better=("higher_is_better", "first"),
                      mean=("value", "mean"), std=("value", "std"), n=("value", "count"),
                      sparsity_achieved=("sparsity_achieved", "mean"), train_cost_rel=("train_cost_rel", "mean"),
                      inference_flops_rel=("inference_flops_rel", "mean"), when=("when", "first"),
                      criterion=("criterion", "first"), run_ids=("run_id", lambda ids: " ".join(ids)))
    return out.reset_index()


def cell(mean: float, std: float, n: int) -> str:
    return f"{mean:.2f} ± {0.0 if pd.isna(std) else std:.2f} ({n})"


def section(table: pd.DataFrame) -> str:
    """Markdown of one task/profile/variant: the metric per sparsity, and the training cost."""
    first = table.iloc[0]
    higher = bool(first["higher_is_better"])
    title = f"## {first['task']} — profile `{first['profile']}`"
    if first["variant"] != "official":
        title += f" — data: {first['variant']}"
    dense = table[table["method"] == "dense"]
    rest = table[table["method"] != "dense"]
    order = rest.groupby("method")["mean"].mean().sort_values(ascending=not higher).index.tolist()
    cells = rest.assign(cell=[cell(m, s, n) for m, s, n in zip(rest["mean"], rest["std"], rest["n"])])
    grid = cells.pivot(index="method", columns="sparsity", values="cell").reindex(order).fillna("—")
    grid.columns = [f"{c:.0%}".replace(".0%", "%") if c * 100 == int(c * 100) else f"{c:.1%}" for c in grid.columns]
    taxonomy = rest.groupby("method")[["when", "criterion"]].first().reindex(order)
    grid.insert(0, "criterion", taxonomy["criterion"])
    grid.insert(0, "when", taxonomy["when"])
    cost = rest.pivot(index="method", columns="sparsity", values="train_cost_rel").reindex(order)
    cost.columns = grid.columns[2:]
    lines = [title, "",
             f"Test {first['metric']} ({'higher' if higher else 'lower'} is better), mean ± std (n seeds) "
             f"at each target sparsity."]
    if not dense.empty:
        d = dense.iloc[0]
        lines.append(f"Dense reference: **{cell(d['mean'], d['std'], d['n'])}**.")
    lines += ["", grid.to_markdown() if not grid.empty else "_no pruned runs yet_", "",
              "Training cost relative to one dense training (FLOPs counted by the harness):", "",
              cost.map(lambda v: "—" if pd.isna(v) else f"{v:.2f}×").to_markdown() if not cost.empty else "", ""]
    return "\n".join(lines)


def build(uri: str | None = None, out_dir: str | Path = "leaderboard") -> pd.DataFrame:
    """Regenerate the leaderboard from the runs at ``uri``; returns the aggregated table."""
    uri = tracking.tracking_uri(uri)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trials = trial_table(uri)
    header = ["# sparsebench leaderboard", "",
              "Generated by `make leaderboard` from the MLflow runs; every number comes from a run. "
              "Sparsity is the fraction of prunable weights that are zero, counted in the final weights.", ""]
    if trials.empty:
        (out / "README.md").write_text("\n".join(header + ["_No completed runs yet._", ""]))
        pd.DataFrame(columns=KEYS).to_csv(out / "results.csv", index=False)
        return pd.DataFrame()
    table = aggregate(trials)
    table.to_csv(out / "results.csv", index=False)
    sections = [section(group) for _, group in table.groupby(["task", "profile", "variant"], sort=True)]
    (out / "README.md").write_text("\n".join(header + sections))
    return table
