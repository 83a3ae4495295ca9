"""The tuning track: every method searched with the same budget on validation data.

A *study* is one task, profile, method and target sparsity with a budget of N configurations.
Its candidates are the paper's defaults, then N - 1 draws from the method's search space by Ray
Tune's random search (its variant generator, seeded); duplicates are dropped, so a method with a
small or empty space uses less than N (and says so on the board). Each candidate is an ordinary
trial on the ``tuning`` track: trained under a seed of its own (``TUNING_SEED``, apart from the
reported seeds), evaluated on validation only, recorded in MLflow and resumed by config id like
any sweep. The candidate with the best validation metric (the task's direction) is then run on
the requested seeds on the ``tuned`` track, the only runs of a study evaluated on test.

Why random search: its candidates are known before any trial runs, so an interrupted study
resumes exactly (the same N configurations, none run twice), and studies of all methods run in
parallel on one grid. With N = 8 over one to three dimensions, adaptive searchers (e.g. Optuna's
TPE) have too few observations to beat it (Bergstra & Bengio 2012). Early stopping (ASHA) is not
used: the profiles tuned so far train 2-3 epochs, where it would stop little.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from sparsebench.core import registry
from sparsebench.core.space import check_space, describe, rounded, space_digest
from sparsebench.running.trial import SPARSITY_TOLERANCE, TrialSpec, make_method, make_task

TUNING_SEED = 1000


@dataclass(frozen=True)
class Study:
    task: str
    profile: str
    method: str
    sparsity: float
    budget: int
    seeds: tuple[int, ...] = (0,)
    hparams: dict = field(default_factory=dict)  # fixed overrides, not searched
    search_seed: int = 0

    def __post_init__(self):
        if not isinstance(self.budget, int) or self.budget < 1:
            raise ValueError(f"a tuning budget is a whole number of configurations >= 1, got {self.budget!r}")

    def space(self) -> dict:
        method = make_method(self.method, self.hparams)
        space = {k: d for k, d in method.space(self.sparsity).items() if k not in self.hparams}
        check_space(self.method, space, method.hparams())
        return space

    @property
    def id(self) -> str:
        """What determines the choice: budget, search seed and space (its digest)."""
        return f"random-n{self.budget}-s{self.search_seed}-{space_digest(self.space())}"

    def candidates(self) -> list[TrialSpec]:
        """The defaults, then random draws from the space; at most ``budget``, without repeats."""
        space = self.space()
        defaults = make_method(self.method, self.hparams).hparams()
        configs = [{k: defaults[k] for k in space}]
        configs += sample(space, self.budget - 1, self.search_seed) if space else []
        specs = [TrialSpec(self.task, self.method, self.sparsity, TUNING_SEED, self.profile,
                           {**self.hparams, **c}, track="tuning") for c in configs]
        return list({s.config_id(): s for s in specs}.values())

    def tuned(self, chosen: dict) -> list[TrialSpec]:
        return [TrialSpec(self.task, self.method, self.sparsity, seed, self.profile, {**self.hparams, **chosen},
                          track="tuned", study=self.id) for seed in self.seeds]


def sample(space: dict, n: int, seed: int) -> list[dict]:
    """``n`` configurations drawn by Ray Tune's random search (``generate_variants``), seeded."""
    import numpy as np
    from ray.tune.search.variant_generator import generate_variants

    state = np.random.RandomState(seed)
    unresolved = {name: dim.to_tune() for name, dim in space.items()}
    out = []
    for _ in range(n):
        _, resolved = next(generate_variants(unresolved, random_state=state))
        out.append({k: rounded(v.item() if hasattr(v, "item") else v) for k, v in resolved.items()})
    return out


def plan_studies(tasks, methods, sparsities, seeds, profile, budget, hparams=None) -> list[Study]:
    """One study per task, pruning method and sparsity (the dense reference is not tuned)."""
    studies = []
    for task in tasks:
        make_task(task, profile)
        for method in methods:
            cls, _ = registry.METHODS.get(method)
            for s in (sparsities if cls.prunes else []):
                studies.append(Study(task, profile, method, float(s), budget, tuple(seeds), dict(hparams or {})))
    for study in studies:
        study.space()  # unknown names or ranges that exclude a default: fail before anything runs
    return studies


def choose(study: Study, runs) -> dict | None:
    """The best completed candidate by validation metric, with the search's record; None if none
    qualifies. Where sparsity is learned (STR), a candidate that fell short of the target does not
    qualify: tuning must not buy accuracy with density (one that overshoots only handicaps itself)."""
    candidates = study.candidates()
    ids = [c.config_id() for c in candidates]
    task = make_task(study.task, study.profile)
    val = f"metrics.final/val_{task.metric.name}"
    mine = runs[runs["tags.sb.config_id"].isin(ids)] if not runs.empty else runs
    finished = mine[mine["tags.sb.status"].isin(["completed", "failed"])].drop_duplicates("tags.sb.config_id", keep="last")
    completed = finished[finished["tags.sb.status"] == "completed"]
    if not registry.METHODS.get(study.method)[0].exact_sparsity and not completed.empty:
        completed = completed[completed["metrics.final/sparsity"] >= study.sparsity - SPARSITY_TOLERANCE]
    if completed.empty or val not in completed:
        return None
    order = {cid: i for i, cid in enumerate(ids)}
    ranked = completed.assign(order=completed["tags.sb.config_id"].map(order))
    ranked = ranked.sort_values([val, "order"], ascending=[not task.metric.higher_is_better, True])
    best = candidates[order[ranked.iloc[0]["tags.sb.config_id"]]]
    space = study.space()
    chosen = {k: best.hparams[k] for k in space}
    cost = finished.get("metrics.cost/train_cost_rel")
    return {"chosen": chosen, "note": {
        "tags": {"tuning.budget": study.budget, "tuning.configs": len(candidates),
                 "tuning.failed": int((finished["tags.sb.status"] == "failed").sum()),
                 "tuning.chosen": json.dumps(chosen, sort_keys=True), "tuning.space": describe(space)},
        "metrics": {"tuning/best_val": float(ranked.iloc[0][val]),
                    "tuning/search_cost_rel": float(cost.sum()) if cost is not None else float("nan")}}}


def run_tuning(studies: list[Study], *, uri=None, name="tune", **sweep_options):
    """Search every study, then run each choice on its seeds. Returns the two sweeps' summaries
    (the second None if the search was interrupted: run again to resume)."""
    from sparsebench.running import tracking
    from sparsebench.running.sweep import run_sweep

    uri = tracking.tracking_uri(uri)
    candidates = list({c.config_id(): c for s in studies for c in s.candidates()}.values())
    print(f"sparsebench: tuning {len(studies)} studies, {len(candidates)} configurations on validation", flush=True)
    search = run_sweep(candidates, uri=uri, name=f"{name}-search", **sweep_options)
    if search.interrupted > 0:
        return search, None
    runs = tracking.runs_frame(uri, sorted({s.task for s in studies}))
    finals, notes = [], {}
    for study in studies:
        choice = choose(study, runs)
        if choice is None:
            print(f"sparsebench: {study.task} {study.method} sparsity {study.sparsity}: no tuning "
                  "configuration completed at the target sparsity; nothing to run on test", flush=True)
            continue
        for spec in study.tuned(choice["chosen"]):
            finals.append(spec)
            notes[spec.config_id()] = choice["note"]
    return search, run_sweep(finals, uri=uri, name=f"{name}-tuned", notes=notes, **sweep_options)
