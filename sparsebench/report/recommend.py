"""The answer first: the board's "how to read" and its recommendation table.

For each family (MLP, CNN, RNN, transformer), track and target sparsity, the recommendation is the
leaders' group (rank 1 of :mod:`sparsebench.report.ranking`: the best method and those within noise
of it; sanity-check ablations such as ``snip+invert`` left out, whose spread can put them there) of one section: the one with ranked cells at that sparsity and the longest budget (a
``quick`` smoke test only where nothing else ran), then the most methods. Where no cell there has
three seeds, the best mean is shown, marked as not ranked. Rendered by :mod:`sparsebench.report.html`
and :mod:`sparsebench.report.markdown`.
"""
from __future__ import annotations

import pandas as pd

from sparsebench.report.ranking import MIN_SEEDS, TEST
from sparsebench.report.formatting import STALE, percent
from sparsebench.report.tables import Section

FAMILIES = {"mlp": "MLP", "cnn": "CNN", "rnn": "RNN", "transformer": "transformer"}
TRACK_ORDER = {"default": 0, "tuned": 1, "one-shot": 2}
SANITY_CHECK = "+"  # ``snip+invert`` and the like (sparsebench.library.ablations): checks, never recommended
PROFILE_WEIGHT = {"full": 4, "medium": 3, "medium-decay": 3, "pretrained": 3, "quick": 0}  # longer budgets first


def family(section: Section) -> str:
    values = [f for f in section.rows.get("family", pd.Series(dtype=str)) if f]
    return values[0] if values else ""


def delta(row: pd.Series, dense: pd.Series | None) -> float:
    """The cell's mean minus the dense reference's (NaN without one), in the metric's unit."""
    return float("nan") if dense is None else float(row["mean"] - dense["mean"])


def recommendations(sections: list[Section]) -> list[dict]:
    """One entry per family, track and sparsity: ``section``, ``sparsity``, ``leaders`` (the rows of
    the leaders' group, best first), ``ranked`` (False: the best mean of unranked cells)."""
    candidates: dict[tuple, list[tuple]] = {}
    for section in sections:
        fam = family(section)
        rows = section.rows  # a cell that did not reach its sparsity recommends nothing at it
        rows = rows[~rows["off_target"].fillna(False).astype(bool)] if "off_target" in rows else rows
        for sparsity, cells in rows.groupby("sparsity"):
            ranked = int(cells["rank"].notna().sum())
            key = (ranked >= 2, PROFILE_WEIGHT.get(section.profile, 1), ranked, len(cells))
            candidates.setdefault((fam, section.track, sparsity), []).append((key, section, cells))
    out = []
    for (fam, track, sparsity), found in candidates.items():
        _, section, cells = max(found, key=lambda c: c[0])
        leaders = cells[(cells["rank"] == 1) & ~cells["method"].str.contains(SANITY_CHECK, regex=False)]
        ranked = not leaders.empty
        if not ranked:
            leaders = cells.sort_values("mean", ascending=not section.higher_is_better).head(1)
        leaders = leaders.sort_values("mean", ascending=not section.higher_is_better)
        out.append({"family": fam, "track": track, "sparsity": sparsity, "section": section, "leaders": leaders,
                    "ranked": ranked, "others": len(found) - 1})
    order = list(FAMILIES)
    return sorted(out, key=lambda r: (order.index(r["family"]) if r["family"] in order else len(order),
                                      r["family"], TRACK_ORDER.get(r["track"], 9), r["track"], r["sparsity"]))


def track_name(track: str) -> str:
    """A track's short name (its long title, e.g. the one-shot track's, is in "how to read")."""
    return track


def profiles_line(sections: list[Section]) -> str:
    """The profiles on the board with their budgets: "quick (1–2 epochs: a smoke test), medium (17 epochs), …"."""
    budgets: dict[str, set[str]] = {}
    for s in sections:
        budgets.setdefault(s.profile, set()).add(s.budget or "budget not recorded")
    words = []
    for profile in sorted(budgets, key=lambda p: PROFILE_WEIGHT.get(p, 1)):
        text = ", ".join(sorted(budgets[profile]))
        note = {"quick": ": a smoke test that checks the harness, not results to act on",
                "pretrained": ": a trained dense model, pruned once"}.get(profile, "")
        words.append(f"`{profile}` ({text}{note})")
    return "; ".join(words)


def how_to_read(sections: list[Section]) -> list[tuple[str, str]]:
    """(term, explanation) pairs for the top of the board; `code` in backticks."""
    return [
        ("Profiles", "a task's training budget: " + profiles_line(sections)
         + ". Profiles are never mixed in a table."),
        ("Tracks", "default: each method with its paper's hyperparameters, sparse from the start or pruned and "
         "retrained within the profile's budget; tuned: 8 configurations searched on validation, the chosen one "
         "run on test; one-shot: a trained model pruned once, no retraining."),
        ("Sparsity", "the fraction of prunable weights that are zero, counted by the harness in the final "
         "weights; effective sparsity also counts weights on no input–output path."),
        ("Cells", f"`69.7 ± 0.5` is the mean ± standard deviation over n seeds of the test metric; n < "
         f"{MIN_SEEDS} is shown but not ranked (○). Methods share a rank when their difference is within noise: "
         f"{TEST}. Bold: the leaders' group (rank 1); a method with a wide spread can share it with a far lower "
         "mean: read its ± too. ↓ marks a metric where lower is better (perplexity). A method named with settings, "
         "`l0 (lambda_scale=10)`, ran with those hyperparameters instead of its defaults: a cell of its own."),
        ("Cost", "Δ vs dense in the metric's unit; training FLOPs relative to one dense training (counted by the "
         "harness); measured inference speedup over the dense model at the evaluation batch (one thread; — not "
         "measured)."),
    ]


def leader_lines(entry: dict) -> list[dict]:
    """Per leader of an entry: method, metric text, Δ, cost, speedup, n (plain text)."""
    section = entry["section"]
    out = []
    for _, r in entry["leaders"].iterrows():
        d = delta(r, section.dense)
        out.append({"method": r["method"] + (f" {STALE}" if r.get("stale", False) else ""), "row": r,
                    "metric": f"{r['mean']:.2f}" + ("" if pd.isna(r["std"]) else f" ± {r['std']:.2f}")
                    + ("" if section.higher_is_better else f" {section.metric} ↓"),
                    "delta": "no dense run" if section.dense is None else f"{d:+.2f}",
                    "cost": "—" if pd.isna(r["train_cost_rel"]) else f"{r['train_cost_rel']:.2f}×",
                    "speedup": "—" if pd.isna(r["speedup"]) else f"{r['speedup']:.2f}×", "n": int(r["n"])})
    return out


def where(entry: dict) -> str:
    """The section an entry comes from: "resnet20-cifar10jpeg · medium (17 epochs)"."""
    s = entry["section"]
    return f"{s.task} · {s.profile}" + (f" ({s.budget})" if s.budget else "") + (
        f" · {s.variant}" if s.variant != "official" else "")


def entry_sparsity(entry: dict) -> str:
    return percent(entry["sparsity"])
