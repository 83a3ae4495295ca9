"""OWL, RIA, DSnoT and the N:M one-shot rows: their rules on hand-computed cases, and the pattern
and calibration size of their trials."""
import importlib

import pytest
import torch

from sparsebench.core import registry
from sparsebench.running import bundle_checks, records
from sparsebench.running.trial import TrialSpec, run_trial


def module_of(method):
    return importlib.import_module(registry.METHODS.get(method)[0].__module__)


def test_owl_densities_follow_the_outlier_ratios_around_the_target():
    owl = module_of("owl-wanda")
    # ratios 1, 2, 3 → scaled to 0, 0.08, 0.16 (2λ) → centred on the density 0.3
    assert owl.owl_sparsities([1.0, 2.0, 3.0], [10, 10, 10], 0.7, 0.08) == pytest.approx([0.78, 0.7, 0.62])
    # unequal blocks: the mean weighted by size is the target, so the network's sparsity is
    s = owl.owl_sparsities([1.0, 3.0], [30, 10], 0.7, 0.08)
    assert (30 * s[0] + 10 * s[1]) / 40 == pytest.approx(0.7) and s[0] > s[1]
    assert owl.owl_sparsities([2.0, 2.0], [5, 9], 0.5, 0.08) == [0.5, 0.5]  # no outliers to weigh: uniform
    assert owl.owl_sparsities([9.0, 1.0], [1, 1000], 0.1, 0.08)[0] == 0.01  # bounded as the code bounds it
    assert owl.owl_sparsities([9.0, 1.0], [1000, 1], 0.9, 0.08)[1] == 0.99
    assert owl.outlier_ratio(torch.tensor([1.0, 1.0, 1.0, 100.0]), 3.0) == 25.0  # 100 > 3 × 25.75: one of four


def test_ria_scores_a_weight_relative_to_its_row_and_column():
    ria = module_of("ria")
    scores = torch.tensor([[1.0, 3.0], [1.0, 1.0]])
    # |W| / column sums (2, 4) + |W| / row sums (4, 2): [[1/2 + 1/4, 3/4 + 3/4], [1/2 + 1/2, 1/4 + 1/2]]
    w = scores.abs()
    relative = w / w.sum(0, keepdim=True) + w / w.sum(1, keepdim=True)
    assert relative.tolist() == [[0.75, 1.5], [1.0, 0.75]]
    mask = ria.permuted_nm_mask(torch.rand(6, 16, generator=torch.Generator().manual_seed(0)), 2, 4)
    assert mask.sum() == 6 * 8  # 2 of every 4, in the permuted order


def test_ria_channel_permutation_deals_the_ranked_channels_to_the_run_positions():
    ria = module_of("ria")
    scores = torch.arange(8.0).repeat(2, 1)  # channel j's summed score grows with j
    mask = ria.permuted_nm_mask(scores, 1, 4)
    # ranked 0..7, chunks (0, 1), (2, 3), (4, 5), (6, 7) dealt to positions 0, 1 (reversed), 2, 3 (reversed):
    # runs (0, 3, 4, 7) and (1, 2, 5, 6) keep their best, 7 and 6
    assert mask[0].nonzero().flatten().tolist() == [6, 7]


def test_dsnot_swaps_move_the_reconstruction_error_towards_zero_and_keep_the_count():
    refine = module_of("dsnot").refine
    keep = torch.tensor([[True, True, False, False]])
    contribution = torch.tensor([[0.5, -0.3, 0.8, 0.1]])  # pruned: 0.8 + 0.1 → e = 0.9
    wanda = torch.tensor([[1.0, 2.0, 0.5, 0.1]])
    var = torch.ones(4)
    out = refine(keep, contribution, wanda, var, cycles=50, threshold=0.1, power=1.0)
    # e > 0: regrow the largest (0.8), prune the kept one of negative contribution (−0.3): e = 0.9 − 0.8 − 0.3
    assert out.tolist() == [[True, False, True, False]]
    assert out.sum() == keep.sum()
    small = refine(keep, contribution * 0.05, wanda, var, cycles=50, threshold=0.1, power=1.0)
    assert torch.equal(small, keep)  # |e| = 0.045 ≤ 0.1: nothing to repair


def test_dsnot_attention_refines_the_attention_projections_only(one_thread):
    from sparsebench.library.inputs import blocks
    from sparsebench.running.trial import make_context, make_task
    task = make_task("tiny-transformer", "quick")
    splits = task.load(None)
    masks = {}
    for method in ("wanda", "dsnot", "dsnot-attention"):
        torch.manual_seed(0)  # the same model and calibration draw for the three
        ctx = make_context(task, splits.train, splits.val, 0.5, torch.Generator().manual_seed(0))
        cls, defaults = registry.METHODS.get(method)
        cls(**defaults).run(ctx)
        first = blocks(ctx)[0]  # one block's inputs are measured before any of its layers is pruned
        masks[method] = {name: ctx.masks[name].clone() for name in first}
    attention = [name for name in masks["wanda"] if "_proj" in name]
    assert attention and len(attention) < len(masks["wanda"])
    for name in masks["wanda"]:
        assert torch.equal(masks["dsnot-attention"][name], masks["dsnot" if name in attention else "wanda"][name]), name
    # the swaps changed masks on both sides, so the comparisons above tell the variants apart
    assert any(not torch.equal(masks["dsnot"][n], masks["wanda"][n]) for n in attention)
    assert any(not torch.equal(masks["dsnot"][n], masks["wanda"][n]) for n in masks["wanda"] if n not in attention)
    with pytest.raises(ValueError, match="unknown layers"):
        registry.METHODS.get("dsnot")[0](layers="mlp")


@pytest.mark.parametrize("method, n, m", [("wanda-2:4", 2, 4), ("sparsegpt-4:8", 4, 8), ("ria-2:4", 2, 4),
                                          ("nm-magnitude-oneshot-4:8", 4, 8)])
def test_nm_one_shot_trials_hold_their_pattern(method, n, m, one_thread):
    from sparsebench.running.trial import make_context, make_task
    task = make_task("tiny-mlp", "quick")
    splits = task.load(None)
    ctx = make_context(task, splits.train, splits.val, 0.5, torch.Generator().manual_seed(0))
    cls, defaults = registry.METHODS.get(method)
    assert cls.structure == "n:m"
    cls(**defaults).run(ctx)
    for name, p in ctx.masks.params.items():
        rows = (p != 0).flatten(1)
        whole = rows.shape[1] - rows.shape[1] % m
        assert (rows[:, :whole].reshape(len(rows), -1, m).sum(-1) <= n).all(), name


def test_one_shot_trials_record_their_calibration(one_thread):
    result = run_trial(TrialSpec("tiny-mlp", "owl-wanda", 0.7, 0))
    assert result["status"] == "completed", result["reason"]
    assert result["metrics"]["calibration/examples"] == 512 and "calibration/tokens" not in result["metrics"]  # the whole split
    assert result["metrics"]["final/sparsity"] == pytest.approx(0.7, abs=0.005)


def test_the_harness_fails_a_trial_whose_weights_break_the_nm_pattern(monkeypatch, one_thread):
    from sparsebench.library.structures import pattern_violations
    ok = torch.tensor([[1.0, 0.0, 2.0, 0.0, 5.0, 0.0]])  # runs (1, 0, 2, 0) and the tail (5, 0): 1 of 2 kept
    assert pattern_violations({"a": ok}, 2, 4) == []
    assert pattern_violations({"a": torch.tensor([[1.0, 1.0, 2.0, 0.0]]), "b": ok}, 2, 4) == ["a"]
    assert pattern_violations({"a": torch.tensor([[0.0, 0.0, 0.0, 0.0, 5.0, 1.0]])}, 2, 4) == ["a"]
    wanda = module_of("wanda-2:4")  # its rows masked as unstructured 50 %, its pattern declared 2:4
    monkeypatch.setattr(wanda, "nm_mask", lambda scores, n, m: wanda.per_row_top_k(scores, 0.5))
    spec = TrialSpec("tiny-mlp", "wanda-2:4", 0.5, 0)
    result = run_trial(spec)
    assert result["status"] == "failed" and "pattern" in result["reason"], result["reason"]
    # it failed after its test: the run it makes records no test result, and a bundle takes it
    assert "final/test_accuracy" in result["metrics"]
    record = records.bundle_record(spec, result, {}, 0, 1, records.describe(spec))
    assert "final/test_accuracy" not in record["metrics"] and record["tags"]["sb.status"] == "failed"
    assert bundle_checks.check(record) is None
