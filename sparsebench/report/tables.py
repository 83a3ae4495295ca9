"""The leaderboard's data: MLflow runs -> pandas tables (their cells' text: :mod:`sparsebench.report.formatting`).

Reads every completed trial run with ``mlflow.search_runs`` (nothing else: the leaderboard can
be regenerated at any time), keeps the latest run per config id, and aggregates seeds per task,
profile, dataset variant, track, method and target sparsity: mean, standard deviation and n. One
:class:`Section` per task, profile, variant and track (they are never mixed), and the summary's
ranks of methods compared on the same tasks. Rendered by :mod:`sparsebench.report.markdown`,
:mod:`sparsebench.report.html` and :mod:`sparsebench.report.plots`; :mod:`sparsebench.report.board`
writes them all.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pandas as pd

from sparsebench.core import registry
from sparsebench.report.formatting import cell, count, duration, percent, ratio, speedups
from sparsebench.report.ranking import group_ranks, unranked_reason
from sparsebench.running import tracking

NAN = float("nan")
KEYS = ["task", "profile", "variant", "track", "method", "sparsity"]
SECTION_KEYS = ["task", "profile", "variant", "track"]


def superseded(runs: pd.DataFrame) -> pd.Series:
    """Runs of a method or task whose plugin is here with another version: not current results."""
    out = pd.Series(False, index=runs.index)
    profiles = runs["params.profile"] if "params.profile" in runs else pd.Series(None, index=runs.index)
    for reg, name_col, version_col in ((registry.METHODS, "params.method", "tags.sb.method_version"),
                                       (registry.TASKS, "params.task", "tags.sb.task_version")):
        if version_col not in runs:
            continue
        current = pd.Series([reg.version(n, p if isinstance(p, str) else None) if n in reg.entries else None
                             for n, p in zip(runs[name_col], profiles)], index=runs.index, dtype=object)
        out |= current.notna() & runs[version_col].notna() & (runs[version_col] != current)
    return out


def stale(runs: pd.DataFrame) -> pd.Series:
    """Runs whose code changed since they ran, or that recorded no code digest
    (:func:`sparsebench.running.provenance.staleness`): shown with :data:`~sparsebench.report.formatting.STALE`."""
    from sparsebench.running import provenance

    tags = runs.filter(regex=r"^tags\.sb\.(method|task|profile|spec|code\..*)$").rename(columns=lambda c: c[len("tags."):])
    known: dict[tuple, bool] = {}  # runs of one cell made by one code share the answer: judged once

    def judge(row: dict) -> bool:
        found = tuple(sorted((k, v) for k, v in row.items() if isinstance(v, str)
                             and not (k == "sb.spec" and isinstance(row.get("sb.profile"), str))))  # its profile
        if found not in known:
            known[found] = bool(provenance.staleness(dict(found)))
        return known[found]
    return pd.Series([judge(row) for row in tags.to_dict("records")], index=runs.index, dtype=bool)


def trial_table(uri: str) -> pd.DataFrame:
    """One row per completed trial of the current plugin versions (latest run per config id),
    with plain column names; ``run_id`` is the id a run has in every store (its origin's)."""
    runs = tracking.runs_frame(uri)
    if runs.empty:
        return pd.DataFrame()
    runs = runs[runs["tags.sb.status"] == "completed"].sort_values(["start_time", "run_id"])
    runs = runs[~superseded(runs)]
    # per config id the latest run of this checkout's code, else the latest run
    runs = runs.assign(_stale=stale(runs)).sort_values(["_stale", "start_time", "run_id"], ascending=[False, True, True])
    runs = runs.drop_duplicates("tags.sb.config_id", keep="last")

    def col(name, default=None):
        return runs[name] if name in runs else pd.Series(default, index=runs.index)

    runs = runs[col("tags.sb.track", "default").fillna("default") != "tuning"]  # searches never reach the board

    # a run with hyperparameters of its own (``--set``, a suite block's ``"set"``) is a cell of its own, named by
    # them; the tuned track's runs carry their search's choice, shown in the cell's "chosen" instead
    hparams = col("tags.sb.spec").map(spec_hparams)
    settings = hparams.map(setting).where(col("tags.sb.track", "default").fillna("default") != "tuned", "")
    method = runs["params.method"] + settings.map(lambda s: f" ({s})" if s else "")

    origin = col(f"tags.{tracking.ORIGIN}").astype(object).where(lambda o: o.notna(), runs["run_id"])

    metric_name = col("tags.sb.metric")
    value = pd.Series([runs.at[i, f"metrics.final/test_{m}"] if f"metrics.final/test_{m}" in runs else None
                       for i, m in metric_name.items()], index=runs.index, dtype=float)
    return pd.DataFrame({
        "task": runs["params.task"], "profile": runs["params.profile"],
        "variant": col("tags.sb.dataset_variant", "").fillna("").replace("", "official"),
        "method": method, "method_name": runs["params.method"], "hparams": hparams.map(json_text),
        "sparsity": runs["params.sparsity"].astype(float),
        "seed": runs["params.seed"].astype(int), "metric": metric_name,
        "higher_is_better": col("tags.sb.higher_is_better") == "True", "value": value,
        "sparsity_achieved": col("metrics.final/sparsity"), "structure": structure(runs, col),
        "effective_sparsity": col("metrics.final/effective_sparsity"),
        "collapse": col("tags.sb.collapse", "").fillna(""), "train_cost_rel": col("metrics.cost/train_cost_rel"),
        "train_steps_rel": col("metrics.cost/train_steps_rel"),
        "inference_flops_rel": col("metrics.inference/flops_rel"),
        "speedup": col("metrics.inference/speedup_measured", NAN),
        "speedup_b1": col("metrics.inference/speedup_measured_b1", NAN),
        "bytes_rel": col("metrics.inference/bytes", NAN) / col("metrics.inference/bytes_dense", NAN),
        "params_nonzero": col("metrics.params/nonzero"), "wall_s": col("metrics.time/trial_seconds", NAN),
        "chance": col("metrics.final/chance", NAN),
        "early_stop": col("metrics.early_stop/iteration", NAN),  # lottery-es: the iterations of minimum validation loss
        "early_stop_dense": col("metrics.early_stop/dense_iteration", NAN),
        "params_total": col("metrics.params/total"), "when": col("tags.sb.when"),
        "criterion": col("tags.sb.criterion"), "experiment_id": runs["experiment_id"], "run_id": origin,
        "store_run_id": runs["run_id"], "stale": runs["_stale"],
        # what a cell's MLflow link filters by: whether its runs carry a track tag (older runs do not), their version
        "track_tagged": col("tags.sb.track").notna(), "method_version": col("tags.sb.method_version", "").fillna(""),
        "track": col("tags.sb.track", "default").fillna("default"), "family": col("tags.sb.family", "").fillna(""),
        # the system card: what each run ran on ("" for runs from before it was recorded)
        **{key: col(f"tags.sb.{key}", "").fillna("") for key in SYSTEM},
        # tuned trials: the budget, the configurations searched, the choice and the search's cost
        "budget": pd.to_numeric(col("tags.sb.tuning.budget"), errors="coerce"),
        "configs": pd.to_numeric(col("tags.sb.tuning.configs"), errors="coerce"),
        "chosen": col("tags.sb.tuning.chosen", "").fillna(""),
        "search_cost_rel": col("metrics.tuning/search_cost_rel"),
    }).reset_index(drop=True)


def spec_hparams(spec: object) -> dict:
    """The hyperparameters a run was asked for (its spec's overrides of the method's defaults)."""
    return json.loads(spec).get("hparams") or {} if isinstance(spec, str) else {}


def setting(hparams: dict) -> str:
    """Hyperparameter overrides as a cell's name shows them: ``k=v, ...`` ("" for none)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(hparams.items()))


def json_text(hparams: dict) -> str:
    """Overrides as a run's ``sb.spec`` tag spells them (keys sorted)."""
    return json.dumps(hparams, sort_keys=True)


SYSTEM = ("cpu", "threads", "device", "versions", "code_version")  # run tags shown on a section's system card


def distinct(values: pd.Series) -> str:
    """The distinct values of a cell's runs, "|"-separated ("" for a run that did not record it)."""
    return "|".join(sorted(set(values.astype(str))))


def system_card(section: "Section") -> str:
    """What a section's runs ran on: each tag's distinct values over its cells and dense reference."""
    rows = [section.rows] + ([section.dense.to_frame().T] if section.dense is not None else [])
    frame = pd.concat(rows)
    parts = []
    for key, label in zip(SYSTEM, ("CPU", "torch threads", "device", "versions", "code")):
        values = sorted({v for joined in frame[key].astype(str) for v in joined.split("|") if v})
        if values:
            shown = values[:4] + ([f"{len(values) - 4} more"] if len(values) > 4 else [])
            parts.append(f"{label}: {', '.join(shown) if key != 'versions' else ' / '.join(shown)}")
    unrecorded = int(frame["cpu"].astype(str).str.split("|").apply(lambda v: "" in v).sum())
    note = f" ({unrecorded} cell(s) with runs from before the system was recorded)" if unrecorded else ""
    return ("; ".join(parts) if parts else "not recorded (runs from before the system card)") + (note if parts else "")


def structure(runs: pd.DataFrame, col) -> pd.Series:
    """What each run's method removes (``sb.structure``); for runs recorded before the tag, what the
    method's plugin declares, where it is in this checkout."""
    tagged = col("tags.sb.structure", "").fillna("")
    declared = runs["params.method"].map(lambda m: registry.METHODS.entries[m][0].structure
                                         if m in registry.METHODS.entries else "")
    return tagged.where(tagged != "", declared)


def aggregate(trials: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n over seeds for each task, profile, variant, method and sparsity."""
    trials = trials.sort_values("seed")
    trials = trials.assign(**{k: v for k, v in (("stale", False), ("track_tagged", False), ("method_version", ""),
                                                ("structure", ""), ("hparams", "{}")) if k not in trials})
    if "method_name" not in trials:
        trials = trials.assign(method_name=trials["method"])
    grouped = trials.groupby(KEYS, dropna=False)
    out = grouped.agg(metric=("metric", "first"), higher_is_better=("higher_is_better", "first"),
                      mean=("value", "mean"), std=("value", "std"), n=("value", "count"),
                      sparsity_achieved=("sparsity_achieved", "mean"), structure=("structure", "first"),
                      effective_sparsity=("effective_sparsity", "mean"),
                      collapsed=("collapse", lambda c: int((c != "").sum())),
                      collapse=("collapse", lambda c: "; ".join(sorted(set(c) - {""}))),
                      train_cost_rel=("train_cost_rel", "mean"),
                      train_steps_rel=("train_steps_rel", "mean"),
                      inference_flops_rel=("inference_flops_rel", "mean"),
                      speedup=("speedup", "mean"), speedup_b1=("speedup_b1", "mean"), bytes_rel=("bytes_rel", "mean"),
                      wall_s=("wall_s", "mean"), chance=("chance", "mean"), stale=("stale", "any"),
                      track_tagged=("track_tagged", "all"), method_version=("method_version", "first"),
                      method_name=("method_name", "first"), hparams=("hparams", "first"),
                      params_nonzero=("params_nonzero", "mean"), params_total=("params_total", "mean"),
                      when=("when", "first"), criterion=("criterion", "first"), family=("family", "first"),
                      **{key: (key, distinct) for key in SYSTEM},
                      budget=("budget", "first"), configs=("configs", "first"), chosen=("chosen", "first"),
                      search_cost_rel=("search_cost_rel", "first"),
                      experiment_id=("experiment_id", "first"), run_ids=("run_id", lambda ids: " ".join(ids)),
                      first_run=("store_run_id", "first"))  # the first seed's run in this store
    out = out.reset_index()
    # no better than a model that learned nothing from its inputs (runs from before it was measured: never)
    out["at_chance"] = (out["mean"] <= out["chance"]).where(out["higher_is_better"], out["mean"] >= out["chance"])
    out["off_target"] = off_target(out)
    return out


OFF_TARGET_FACTOR = 1.25


def off_target(cells: pd.DataFrame) -> pd.Series:
    """Cells of weight (and N:M) sparsity whose density reached is more than :data:`OFF_TARGET_FACTOR`
    times off the target's, either way: a method that sets its sparsity only through a penalty
    (STR, L0, soft movement, sparse VD) compared at a sparsity it did not reach. Structured methods'
    targets count units (filters, neurons, heads), not weights: not judged here."""
    reached, target = 1.0 - cells["sparsity_achieved"], 1.0 - cells["sparsity"]
    ratio = reached / target
    return (cells["structure"].isin(["weights", "n:m"]) & (cells["sparsity"] > 0) & reached.notna()
            & ((ratio > OFF_TARGET_FACTOR) | (ratio < 1.0 / OFF_TARGET_FACTOR)))


TRACK_TITLES = {"tuned": "tuned track", "one-shot": "one-shot track: pruned after training, no retraining"}


def track_title(track: str) -> str:
    """How a track is named on the board ("" for the default track)."""
    return "" if track == "default" else TRACK_TITLES.get(track, f"{track} track")


@dataclass
class Section:
    """One task, profile and dataset variant: what every rendering of the leaderboard shows."""
    task: str
    profile: str
    variant: str
    track: str
    metric: str
    higher_is_better: bool
    rows: pd.DataFrame  # aggregate() rows of the pruning methods
    dense: pd.Series | None  # the dense reference's aggregate() row
    methods: list[str]  # best first: mean rank over the sparsities all methods ran at, then mean metric
    sparsities: list[float]
    plot: str | None = None  # path of the plot, relative to the leaderboard folder
    speedup_plot: str | None = None  # the metric against measured speedup, where runs measured it
    pareto_plot: str | None = None  # the metric against training FLOPs, with the Pareto front
    layers_plot: str | None = None  # per-layer densities of the best methods' runs at the highest sparsity
    untuned: pd.DataFrame | None = None  # tuned track: the default track's rows of the same methods
    merged: dict[str, list[str]] | None = None  # a row's method -> the methods with identical results it stands for
    budget: str = ""  # the profile's training budget, e.g. "2 epochs"

    @property
    def title(self) -> str:
        title = f"{self.task} — profile `{self.profile}`"
        title += f" — data: {self.variant}" if self.variant != "official" else ""
        return title + (f" — {track_title(self.track)}" if self.track != "default" else "")

    @property
    def slug(self) -> str:
        return slug(self.task, self.profile, self.variant, *([self.track] if self.track != "default" else []))

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


def slug(*parts: str) -> str:
    return "--".join(re.sub(r"[^A-Za-z0-9_.]+", "-", p).strip("-") for p in parts)


def budget(task: str, profile: str) -> str:
    """A profile's training budget in words ("2 epochs", "50,000 steps"; "" for a task not installed)."""
    try:
        recipe = registry.TASKS.get(task)[0].profiles[profile]
    except (KeyError, AttributeError, TypeError):
        return ""
    if getattr(recipe, "epochs", None) is not None:
        return f"{recipe.epochs:g} epoch{'s' * (recipe.epochs != 1)}"
    return f"{recipe.steps:,} steps" if getattr(recipe, "steps", None) else ""


def merge_identical(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Methods whose results are identical at every sparsity both ran at (the same algorithm under this
    recipe, e.g. magnitude and magnitude-finetune retraining in full; at least 3 runs alike) become one
    row, "a = b", holding the first's cells and the others' where the first has none; returns the rows
    and that name -> the methods it stands for."""
    cells = {m: {s: (round(mean, 9), None if pd.isna(std) else round(std, 9), n)
                 for s, mean, std, n in zip(g["sparsity"], g["mean"], g["std"], g["n"])}
             for m, g in rows.groupby("method", sort=True)}
    merged, taken = {}, set()
    for i, a in enumerate(cells):
        group = [a] + [b for b in list(cells)[i + 1:] if b not in taken and a not in taken
                       and (shared := set(cells[a]) & set(cells[b]))
                       and all(cells[a][s] == cells[b][s] for s in shared) and sum(cells[a][s][2] for s in shared) >= 3]
        if len(group) > 1:
            taken.update(group)
            merged[" = ".join(group)] = group
    for name, group in merged.items():
        parts, have = [], set()
        for method in group:
            mine = rows[(rows["method"] == method) & ~rows["sparsity"].isin(have)]
            have |= set(mine["sparsity"])
            parts.append(mine)
        rows = pd.concat([rows[~rows["method"].isin(group)], pd.concat(parts).assign(method=name)])
    return rows, merged


def with_ranks(rows: pd.DataFrame, higher: bool) -> pd.DataFrame:
    """A section's rows with ``rank`` (the noise-respecting group rank at each sparsity; NaN where not
    ranked) and ``unranked`` (why not: "n < 3", "collapsed", "at chance")."""
    if rows.empty:
        return rows.assign(rank=pd.Series(dtype=float), unranked=pd.Series(dtype=str))
    rank = pd.concat([group_ranks(cells, higher) for _, cells in rows.groupby("sparsity")])
    return rows.assign(rank=rank, unranked=[unranked_reason(r) for _, r in rows.iterrows()])


def sections(table: pd.DataFrame) -> list[Section]:
    """One per task, profile, variant and track; a tuned or one-shot section borrows the default
    track's dense reference (nothing to tune or prune) and a tuned one keeps the default track's rows
    to show what tuning gained. Methods with identical results are merged (:func:`merge_identical`)."""
    out = []
    for (task, profile, variant, track), group in table.groupby(SECTION_KEYS, sort=True):
        first = group.iloc[0]
        higher = bool(first["higher_is_better"])
        same = table[(table["task"] == task) & (table["profile"] == profile) & (table["variant"] == variant)]
        default = same[same["track"] == "default"]
        dense = default[default["method"] == "dense"]
        if group["method"].eq("dense").all() and (track != "default" or same["track"].ne("default").any()):
            continue  # a dense model alone: shown in the section of the track that prunes it
        rows, merged = merge_identical(group[group["method"] != "dense"])
        rows = with_ranks(rows.reset_index(drop=True), higher)
        score = rows["mean"].where(rows["higher_is_better"], -rows["mean"])
        rank = score.groupby(rows["sparsity"]).rank(ascending=False, method="average")
        # best first by the mean rank over the sparsities every method ran at (all of them if none is shared)
        everyone = rows.groupby("sparsity")["method"].nunique() == rows["method"].nunique()
        common = rows["sparsity"].isin(everyone[everyone].index) if everyone.any() else rows["sparsity"].notna()
        methods = (pd.DataFrame({"method": rows["method"], "rank": rank.where(common), "score": score.where(common)})
                   .groupby("method").agg(rank=("rank", "mean"), score=("score", "mean"))
                   .sort_values(["rank", "score"], ascending=[True, False]).index.tolist())
        out.append(Section(task, profile, variant, track, first["metric"], higher, rows,
                           dense.iloc[0] if not dense.empty else None, methods,
                           sorted(rows["sparsity"].unique().tolist()),
                           untuned=default[default["method"] != "dense"] if track == "tuned" else None,
                           merged=merged, budget=budget(task, profile)))
    return out


def results_grid(section: Section) -> pd.DataFrame:
    """Markdown's main table: one row per method, the metric at each sparsity with its shared rank
    (the leaders' group, rank 1, in bold)."""
    rows = section.rows

    def text(r):
        shown = cell(r["mean"], r["std"], r["n"], r["collapsed"], r["at_chance"], r["rank"], bool(r.get("stale")),
                     r["sparsity_achieved"] if r.get("off_target", False) else None)
        return f"**{shown}**" if r["rank"] == 1 else shown
    cells = rows.assign(cell=[text(r) for _, r in rows.iterrows()])
    grid = cells.pivot(index="method", columns="sparsity", values="cell").reindex(section.methods).fillna("—")
    grid.columns = [percent(c) for c in grid.columns]
    taxonomy = rows.groupby("method")[["when", "criterion"]].first().reindex(section.methods)
    grid.insert(0, "criterion", taxonomy["criterion"])
    grid.insert(0, "when", taxonomy["when"])
    return grid


def cost_table(section: Section) -> pd.DataFrame:
    """Markdown's second table: one row per method and sparsity (dense first), costs and size."""
    rows = [section.dense] if section.dense is not None else []
    order = {m: i for i, m in enumerate(section.methods)}
    rest = section.rows.assign(order=section.rows["method"].map(order)).sort_values(["order", "sparsity"])
    rows += [r for _, r in rest.iterrows()]
    return pd.DataFrame([{
        "method": r["method"], "sparsity": percent(r["sparsity"]),
        "achieved": "—" if pd.isna(r["sparsity_achieved"]) else f"{r['sparsity_achieved']:.2%}",
        "effective": "—" if pd.isna(r["effective_sparsity"]) else f"{r['effective_sparsity']:.2%}",
        section.metric: cell(r["mean"], r["std"], r["n"], r["collapsed"]), "train FLOPs": ratio(r["train_cost_rel"]),
        "train steps": ratio(r["train_steps_rel"], 1),
        "inference FLOPs": ratio(r["inference_flops_rel"], 3),
        "measured speedup (batch 1 / N)": speedups(r),
        "stored size": ratio(r["bytes_rel"], 3),
        "params (nonzero / total)": f"{count(r['params_nonzero'])} / {count(r['params_total'])}",
        "wall time": duration(r["wall_s"]),
        "collapse": r["collapse"] or "",
    } for r in rows])


def tuning_table(section: Section) -> pd.DataFrame:
    """A tuned section's third table: per method and sparsity the choice, the search's size and
    cost, and the result beside the default hyperparameters' (gain: in the metric's direction)."""
    untuned = {(r["method"], r["sparsity"]): r for _, r in section.untuned.iterrows()}
    order = {m: i for i, m in enumerate(section.methods)}
    rows = section.rows.assign(order=section.rows["method"].map(order)).sort_values(["order", "sparsity"])
    out = []
    for _, r in rows.iterrows():
        d = untuned.get((r["method"], r["sparsity"]))
        gain = (r["mean"] - d["mean"]) * (1 if section.higher_is_better else -1) if d is not None else float("nan")
        out.append({"method": r["method"], "sparsity": percent(r["sparsity"]), "chosen": r["chosen"] or "—",
                    "configurations": f"{count(r['configs'])} of {count(r['budget'])}",
                    "search FLOPs": ratio(r["search_cost_rel"]), f"tuned {section.metric}": cell(r["mean"], r["std"], r["n"], r["collapsed"]),
                    f"default {section.metric}": "—" if d is None else cell(d["mean"], d["std"], d["n"], d["collapsed"]),
                    "gain": "—" if pd.isna(gain) else f"{gain:+.2f}"})
    return pd.DataFrame(out)
