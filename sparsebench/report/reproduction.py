"""The reproduction table: each published figure of ``papers.csv`` beside sparsebench's runs of its recipe.

``papers.csv`` (this folder) holds one row per published result: the paper, its table or figure, the
sparsebench cell that re-runs it (task, profile, method, target sparsity; the ``reproduce`` suite runs
them), the figure as printed, its value in the cell's units, how it was read and where it was checked.
Quantities: ``accuracy`` and ``perplexity`` (the trial's test metric; a printed error e is 100 - e),
``remaining`` (percent of the prunable weights left, for methods that learn their sparsity), ``gain``
(the cell minus a ``reference`` cell ``method@sparsity`` of the same task and profile, paired by seed),
and the early-stopping iteration of the methods that record it (``lottery-es``: the iteration of minimum
validation loss), as ``early-stop-earlier`` (percent earlier than the run's own original network:
100 (1 - ticket / original)) or ``early-stop-ratio`` (the ``reference`` cell's iteration over the cell's,
paired by seed: "2.51x faster than when reinitialized"). ``relation`` is ``=`` (default), ``>``
or ``<`` for figures printed as bounds ("more than 0.3 points").

Verdict: "reproduced" when the paper's figure lies within ours ± max(2 std, tolerance) (for ``>``:
ours is not below the figure by more than that margin; for ``<``: not above it), else "not
reproduced"; "not run yet" without runs, "needs a GPU" for rows that name what a GPU needs.

Tolerance, stated per quantity (the paper's figure is one run, or an average we cannot see the
spread of, so ours ± 2 std alone would ask more of it than of our own runs):

- accuracy: two binomial standard errors of an accuracy p measured on the task's test set of n examples
  (MNIST's 10,000 images, SST-2's 872 dev sentences): 2 x 100 sqrt(p (1 - p) / n), 0.26 points at
  98.3 % on MNIST, 1.89 at 91.5 % on SST-2: the sampling noise of the paper's own measurement; plus
  the figure's reading precision (half its last printed digit, or the plot-reading error).
- gain: the same for a difference of two accuracies, sqrt(2) times as wide (p: our reference's
  accuracy, else 98 %), plus the reading precision.
- perplexity: 2 % of the figure, about two standard errors of the mean test log-loss (per-token loss
  spread of about 2.5 nats, an estimate, over Penn Treebank's 82k test tokens: 0.9 % of perplexity).
- remaining: 25 % of the figure (a compression ratio within ±25 %, e.g. 68x against 54x-91x): a
  convention, not a derivation; learned sparsities move with seed and schedule, and the papers give
  one run.
- early-stop-earlier and early-stop-ratio: 25 % of the figure, the same convention: an early-stopping
  iteration is the minimum of a noisy validation curve, and the paper prints the mean of five trials
  without their spread.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

PAPERS = Path(__file__).with_name("papers.csv")
TEST_EXAMPLES = {"minilm-sst2": 872}  # test-set sizes of the accuracy rows' tasks; else MNIST's 10,000
MNIST_TEST = 10_000
EARLY_STOP = ("early-stop-earlier", "early-stop-ratio")
QUANTITIES = ("accuracy", "perplexity", "remaining", "gain", *EARLY_STOP)
VERDICTS = ("reproduced", "not reproduced", "not run yet", "needs a GPU")
COLUMNS = ["paper (table/figure)", "task and recipe", "sparsity", "paper's figure", "ours (mean ± std, n)",
           "difference", "verdict", "note"]
NAN = float("nan")


def load_papers(path: str | Path = PAPERS) -> pd.DataFrame:
    """The published figures, one row each; numeric columns as floats (NaN where blank)."""
    papers = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ("sparsity", "value", "precision"):
        papers[column] = pd.to_numeric(papers[column].replace("", None), errors="raise").astype(float)
    papers["relation"] = papers["relation"].replace("", "=")
    papers["precision"] = papers["precision"].fillna(0.0)
    bad = sorted(set(papers["quantity"]) - set(QUANTITIES)) + sorted(set(papers["relation"]) - {"=", ">", "<"})
    if bad:
        raise ValueError(f"{path}: unknown quantity or relation {bad}")
    return papers


def cell(trials: pd.DataFrame, task: str, profile: str, method: str, sparsity: float, quantity: str) -> pd.Series:
    """The cell's per-seed values (indexed by seed): the test metric, or the percent of weights remaining."""
    if trials.empty:
        return pd.Series(dtype=float)
    track = trials["track"] if "track" in trials else pd.Series("default", index=trials.index)
    rows = trials[(trials["task"] == task) & (trials["profile"] == profile) & (trials["method"] == method)
                  & ((trials["sparsity"] - sparsity).abs() < 1e-6) & (track == "default")]
    if quantity == "remaining":
        values = 100.0 * (1.0 - rows["sparsity_achieved"])
    elif quantity == "early-stop-earlier":
        values = 100.0 * (1.0 - column(rows, "early_stop") / column(rows, "early_stop_dense"))
    elif quantity == "early-stop-ratio":
        values = column(rows, "early_stop")
    else:
        values = rows["value"]
    return pd.Series(values.to_numpy(dtype=float), index=rows["seed"].to_numpy()).dropna()


def column(rows: pd.DataFrame, name: str) -> pd.Series:
    """A column of ``rows``, NaN where the runs do not have it (runs of methods that do not record it)."""
    return rows[name] if name in rows else pd.Series(NAN, index=rows.index)


def ours(row, trials: pd.DataFrame) -> tuple[float, float, int, float]:
    """Mean, std (NaN for one run), n of the row's cell, and its reference's mean (gain rows; else NaN)."""
    values = cell(trials, row.task, row.profile, row.method, row.sparsity, row.quantity)
    ref_mean = NAN
    if row.quantity in ("gain", "early-stop-ratio"):
        method, _, sparsity = row.reference.partition("@")
        ref = cell(trials, row.task, row.profile, method, float(sparsity or 0), row.quantity.replace("gain", "accuracy"))
        ref_mean = ref.mean() if len(ref) else NAN
        values = (values - ref if row.quantity == "gain" else ref / values).dropna()  # paired by seed
    n = len(values)
    return (values.mean() if n else NAN), (values.std() if n > 1 else NAN), n, ref_mean


def tolerance(row, ref_mean: float = NAN) -> float:
    """The row's tolerance (module docstring): the paper's sampling noise plus its reading precision."""
    if row.quantity == "perplexity":
        return 0.02 * row.value + row.precision
    if row.quantity in ("remaining", *EARLY_STOP):
        return 0.25 * row.value + row.precision
    n = TEST_EXAMPLES.get(row.task, MNIST_TEST)
    if row.quantity == "gain":
        p = (ref_mean if not math.isnan(ref_mean) else 98.0) / 100.0
        return 200.0 * math.sqrt(2.0 * p * (1.0 - p) / n) + row.precision
    p = min(max(row.value / 100.0, 0.0), 1.0)
    return 200.0 * math.sqrt(p * (1.0 - p) / n) + row.precision


def verdict(row, mean: float, std: float, n: int, tol: float) -> str:
    """The verdict of one row (module docstring)."""
    if row.gpu:
        return "needs a GPU"
    if n == 0 or math.isnan(row.value):
        return "not run yet"
    margin = max(2.0 * std if n > 1 else 0.0, tol)
    if row.relation == ">":
        ok = mean >= row.value - margin
    elif row.relation == "<":
        ok = mean <= row.value + margin
    else:
        ok = abs(mean - row.value) <= margin
    return "reproduced" if ok else "not reproduced"


def table(trials: pd.DataFrame, papers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every row of ``papers`` with ours (mean, std, n), the difference (ours - paper), the tolerance and
    the verdict, and the display columns of :data:`COLUMNS`."""
    papers = load_papers() if papers is None else papers
    out = []
    for row in papers.itertuples(index=False):
        mean, std, n, ref_mean = ours(row, trials) if not row.gpu else (NAN, NAN, 0, NAN)
        tol = tolerance(row, ref_mean) if not math.isnan(row.value) else NAN
        out.append({**row._asdict(), "mean": mean, "std": std, "n": n, "tolerance": tol,
                    "difference_value": mean - row.value if n else NAN,
                    "verdict": verdict(row, mean, std, n, tol)})
    frame = pd.DataFrame(out)
    frame["paper (table/figure)"] = frame["paper"] + " (" + frame["where"] + ")"
    frame["task and recipe"] = [recipe(r) for r in frame.itertuples()]
    frame["sparsity"] = [f"{100 * s:.2f} %".replace(".00 %", " %") if not math.isnan(s) else "" for s in frame["sparsity"]]
    frame["paper's figure"] = frame["printed"] + " [" + frame["how_read"] + "; " + frame["source"] + "]"
    frame["ours (mean ± std, n)"] = [fmt(r.mean, r.std, r.n) for r in frame.itertuples()]
    frame["difference"] = [f"{d:+.2f} (tolerance {t:.2f})" if not math.isnan(d) else "" for d, t in
                           zip(frame["difference_value"], frame["tolerance"])]
    frame["note"] = [" ".join(p for p in (r.note, f"GPU: {r.gpu}" if r.gpu else "") if p) for r in frame.itertuples()]
    return frame


def recipe(row) -> str:
    text = f"{row.task} `{row.profile}`, {row.method}" if row.profile else f"{row.task}, {row.method}"
    if row.quantity == "gain":
        text += f" minus {row.reference}"
    return text + ("" if row.quantity in ("accuracy", "perplexity") else f" ({row.quantity})")


def fmt(mean: float, std: float, n: int) -> str:
    if not n:
        return ""
    return f"{mean:.2f} ± {std:.2f}, n={n}" if n > 1 else f"{mean:.2f}, n=1"


def counts(frame: pd.DataFrame) -> str:
    found = frame["verdict"].value_counts()
    return ", ".join(f"{found[v]} {v}" for v in VERDICTS if v in found)


def markdown(frame: pd.DataFrame) -> str:
    def cellfmt(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["## Does sparsebench reproduce the papers?", "",
             f"{len(frame)} published figures ({counts(frame)}); figures, sources and tolerances: "
             "`sparsebench/report/papers.csv` and `sparsebench/report/reproduction.py`. Verdict: reproduced when "
             "the paper's figure lies within ours ± max(2 std, tolerance).", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cellfmt(v) for v in row) + " |" for row in frame[COLUMNS].itertuples(index=False)]
    return "\n".join(lines) + "\n"


def html_fragment(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr class=\"{}\">{}</tr>\n".format(
        html.escape(row[COLUMNS.index("verdict")].replace(" ", "-")),
        "".join(f"<td>{html.escape(str(v))}</td>" for v in row)) for row in frame[COLUMNS].itertuples(index=False))
    return (f"<section id=\"reproduction\">\n<h2>Does sparsebench reproduce the papers?</h2>\n"
            f"<p>{len(frame)} published figures ({html.escape(counts(frame))}).</p>\n"
            f"<table class=\"reproduction\">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n</section>\n")


def write(trials: pd.DataFrame, out_dir: str | Path, papers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write ``reproduction.csv``, ``reproduction.md`` and the HTML fragment ``reproduction.html`` into
    ``out_dir`` (the leaderboard's folder); returns the table."""
    out = Path(out_dir)
    frame = table(trials, papers)
    keep = ["row", *COLUMNS, "quantity", "value", "relation", "mean", "std", "n", "tolerance", "difference_value"]
    frame[keep].to_csv(out / "reproduction.csv", index=False)
    (out / "reproduction.md").write_text(markdown(frame))
    (out / "reproduction.html").write_text(html_fragment(frame))
    return frame
