"""Structures: groups found by the dependency graph, group masks held through training, the
compacted model equal to the masked one (ResNet-20's shortcuts included), N:M patterns."""
import pytest
import torch
from torch import nn

from sparsebench.core import registry
from sparsebench.core.masks import Masks
from sparsebench.library import structures
from sparsebench.running.trial import TrialSpec, make_task, run_trial


def pruned_groups(model, prunable, x, fraction=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = Masks(model, prunable)
    groups = structures.find_groups(model, prunable, x, None)
    new = {n: torch.ones_like(p) for n, p in masks.params.items()}
    for group in groups:
        new.update(group.masks(structures.remove_lowest(torch.rand(group.units, generator=g), fraction), new))
    masks.set(new)
    return groups, masks


def test_resnet20_groups_tie_residual_channels_and_the_compact_model_equals_the_masked_one():
    task = make_task("resnet20-cifar10", "quick")
    model = task.model()
    x = torch.randn(4, 3, 32, 32)
    groups, masks = pruned_groups(model, task.prunable(model), x)
    residual = [g for g in groups if g.shared]
    assert len(residual) == 3  # one per stage: every block's second conv (and shortcut) adds to it
    stage3 = next(g for g in residual if g.root == "blocks.6.conv2.weight")
    members = {(w, axis) for w, axis, _ in stage3.members}
    assert {("blocks.6.shortcut.0.weight", 0), ("blocks.8.conv2.weight", 0), ("fc.weight", 1)} <= members
    assert structures.group_sparsity(groups, masks.masks) == 0.5
    model.eval()
    with torch.no_grad():  # BatchNorm statistics made non-trivial, so removed entries matter
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1), m.bias.uniform_(-1, 1)
    small = structures.compact(model, groups, x, None)
    assert sum(p.numel() for p in small.parameters()) < 0.35 * sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-4)


def test_a_layer_read_by_nothing_prunable_offers_no_units():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    # the first layer's neurons are read by a layer that is not prunable: not removable by masks
    assert structures.find_groups(model, ["0.weight"], torch.randn(2, 8), None) == []
    [group] = structures.find_groups(model, ["0.weight", "2.weight"], torch.randn(2, 8), None)
    assert (group.root, group.units) == ("0.weight", 16)  # the outputs (logits) are no units


def test_unit_scores_are_the_root_filters_norms():
    model = nn.Sequential(nn.Conv2d(1, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 2))
    [group] = structures.find_groups(model, ["0.weight", "3.weight"], torch.randn(2, 1, 5, 5), None)
    scores = {"0.weight": model[0].weight.detach().abs(), "3.weight": model[3].weight.detach().abs()}
    expected = model[0].weight.detach().abs().flatten(1).sum(1)
    assert torch.allclose(structures.unit_scores(group, scores).float(), expected)
    # a channel flattened into the fc: its 16 spatial columns go with it
    assert [len(idx) for _, axis, indices in group.members if axis == 1 for idx in indices] == [16, 16, 16]


def test_structured_masks_hold_through_training_with_momentum_and_weight_decay(tiny_log, one_thread):
    result = run_trial(TrialSpec("tiny-mlp", "random-structured", 0.5, 0))  # momentum 0.9, weight decay
    assert result["status"] == "completed", result["reason"]
    m = result["metrics"]
    assert m["final/group_sparsity"] == 0.5  # every removed unit still wholly zero after training
    assert m["final/sparsity"] > 0.5  # a removed neuron takes its row and the next layer's column
    assert result["info"]["inference_form"] in ("dense", "csr", "compact")


def test_nm_masks_keep_n_of_every_m_along_the_inputs():
    scores = torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.5, 0.1, 0.2, 0.3, 9.0, 8.0]])
    mask = structures.nm_mask(scores, 2, 4)
    assert mask.tolist() == [[1, 0, 1, 0, 1, 0, 0, 1, 1, 0]]  # the tail of 2 keeps ceil(2/4 x 2) = 1
    conv = torch.rand(8, 3, 3, 3)
    assert (structures.nm_mask(conv, 2, 4).flatten(1)[:, :24].reshape(8, 6, 4).sum(2) == 2).all()


def test_an_nm_method_refuses_another_sparsity():
    cls, defaults = registry.METHODS.get("nm-magnitude")
    method = cls(**defaults)
    method.check_target(0.5)
    with pytest.raises(ValueError, match="2:4 sparsity is 0.5"):
        method.check_target(0.9)


def test_a_sweep_asking_an_nm_method_for_another_sparsity_is_refused_before_it_starts(tmp_path):
    from sparsebench.running.sweep import validate

    with pytest.raises(ValueError, match="cannot be met"):
        validate([TrialSpec("tiny-mlp", "nm-magnitude", 0.9)], tmp_path)
    validate([TrialSpec("tiny-mlp", "nm-magnitude", 0.5), TrialSpec("tiny-mlp", "dense", 0.0)], tmp_path)


def test_taylor_pruning_reaches_its_fraction_of_units_and_removes_the_least_important(tiny_log, one_thread):
    result = run_trial(TrialSpec("tiny-mlp", "taylor-structured", 0.5, 0))
    assert result["status"] == "completed", result["reason"]
    assert result["metrics"]["final/group_sparsity"] == 0.5  # 64 of the tiny MLP's 128 hidden units
    assert result["metrics"]["cost/train_steps_rel"] == pytest.approx(1.25, abs=0.05)  # training + a quarter


def test_taylor_importance_is_the_squared_sum_of_gradient_times_weight_over_a_unit():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    [group] = structures.find_groups(model, ["0.weight", "2.weight"], torch.randn(4, 3), None)
    contributions = {"0.weight": torch.tensor([[1.0, 2.0, 3.0], [0.5, -0.5, 0.0]]),
                     "2.weight": torch.tensor([[10.0, -1.0]])}
    # unit 0: its row (1 + 2 + 3) and its column in the next layer (10); unit 1: 0 and -1
    assert structures.unit_scores(group, contributions, members="all").tolist() == [16.0, -1.0]


def test_heads_are_units_of_q_k_v_rows_and_output_columns():
    from sparsebench.data.text import SelfAttention

    model = nn.ModuleDict({"attn": SelfAttention(8, 2, bias=False)})
    names = [f"attn.{p}.weight" for p in ("q_proj", "k_proj", "v_proj", "out_proj")]
    [group] = structures.head_groups(model, names)
    assert group.units == 2 and structures.head_groups(model, names[:3]) == []
    masks = group.masks(torch.tensor([True, False]), {n: torch.ones(8, 8) for n in names})
    assert masks["attn.q_proj.weight"][:4].sum() == 0 and masks["attn.q_proj.weight"][4:].all()
    assert masks["attn.out_proj.weight"][:, :4].sum() == 0 and masks["attn.out_proj.weight"][:, 4:].all()
    x = torch.randn(3, 5, 8)
    allowed = torch.ones(5, 5, dtype=torch.bool)
    with torch.no_grad():  # a removed head contributes nothing: the output is that of the other head alone
        for n, p in model.named_parameters():
            p.mul_(masks[n])
        out = model["attn"](x, allowed)
        q, k, v = (getattr(model["attn"], f"{p}_proj").weight[4:] for p in "qkv")
        att = ((x @ q.T) @ (x @ k.T).transpose(1, 2) / 2.0).softmax(-1) @ (x @ v.T)
        assert torch.allclose(out, att @ model["attn"].out_proj.weight[:, 4:].T, atol=1e-5)


def test_head_importance_prunes_a_transformers_heads_and_refuses_a_model_without(tiny_log, one_thread):
    result = run_trial(TrialSpec("tiny-transformer", "head-importance", 0.5, 0))
    assert result["status"] == "completed", result["reason"]
    layers = result["layers"]
    # 2 of the block's 4 heads gone: half of q's rows, as many of out_proj's columns
    assert layers["block.attn.q_proj.weight"]["density"] == 0.5 and layers["block.fc1.weight"]["density"] == 1.0
    assert layers["block.attn.out_proj.weight"]["density"] == 0.5
    result = run_trial(TrialSpec("tiny-mlp", "head-importance", 0.5, 0))
    assert result["status"] == "failed" and "no attention heads" in result["reason"]


def test_head_importance_is_the_absolute_gate_gradient_per_example_summed():
    import importlib

    per_head = importlib.import_module(registry.METHODS.get("head-importance")[0].__module__).per_head
    # 2 examples, 1 token, 2 heads of 2 channels: example sums (1 + 2, -3 - 1) and (-1 + 0, 5 + 1)
    x_grad = torch.tensor([[[1.0, 2.0, -3.0, -1.0]], [[-1.0, 0.0, 5.0, 1.0]]])
    assert per_head(x_grad, 2).tolist() == [3.0 + 1.0, 4.0 + 6.0]


def test_sr_ste_passes_the_gradient_straight_through_and_ends_exactly_n_of_m(tiny_log, one_thread):
    import importlib

    module = importlib.import_module(registry.METHODS.get("sr-ste")[0].__module__)
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[4.0, -1.0, 0.5, 3.0]]))
    with module.nm_forward(nn.ModuleDict({"l": layer}), ["l.weight"], 2, 4):
        assert layer.weight.tolist() == [[4.0, 0.0, 0.0, 3.0]]  # the forward sees 2 of 4
        layer(torch.ones(1, 4)).sum().backward()
    w = layer.weight
    assert w.tolist() == [[4.0, -1.0, 0.5, 3.0]]  # dense underneath, left as it was
    assert w.grad.tolist() == [[1.0, 1.0, 1.0, 1.0]]  # straight through, to the pruned weights too
    result = run_trial(TrialSpec("tiny-mlp", "sr-ste", 0.5, 0))
    assert result["status"] == "completed", result["reason"]
    assert all(v["density"] == 0.5 for v in result["layers"].values())


def test_a_models_units_are_traced_once_per_process_and_every_trial_reports_them(monkeypatch, one_thread):
    """Tracing a transformer's units takes seconds; their structure is the task's, not the weights'."""
    from sparsebench.running import trial

    calls = []
    trace = structures.find_groups
    monkeypatch.setattr(structures, "find_groups", lambda *args: calls.append(1) or trace(*args))
    monkeypatch.setattr(trial, "_GROUPS", {})
    pruned = [run_trial(TrialSpec("tiny-mlp", "l1-filter", s, seed)) for s, seed in ((0.5, 0), (0.75, 1))]
    assert [r["metrics"]["final/group_sparsity"] for r in pruned] == pytest.approx([0.5, 0.75], abs=0.02)
    assert len(calls) == 1 + 2  # the report's tracing once; the method traces for itself in each trial
