"""Post-training pruning: calibration inputs read by hooks (Linear and im2col'd Conv2d), Wanda's
per-row ranking on a hand-computed case, forward-only charging, no retraining by default."""
import pytest
import torch
from torch import nn

from sparsebench.library import calibration_data
from sparsebench.library.inputs import input_norms, layer_inputs
from sparsebench.library.structures import pattern_violations
from sparsebench.running.trial import TrialSpec, make_context, make_task, run_trial

import importlib

from sparsebench.core import registry
from sparsebench.data import data_root


def wanda_module():
    return importlib.import_module(registry.METHODS.get("wanda")[0].__module__)


def test_conv_inputs_are_its_receptive_fields_in_weight_order():
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    x = torch.randn(4, 2, 5, 5)
    cols = layer_inputs(conv, x)
    assert cols.shape == (4 * 25, 2 * 9)
    assert torch.allclose(cols @ conv.weight.view(3, -1).T, conv(x).permute(0, 2, 3, 1).reshape(-1, 3), atol=1e-5)
    with pytest.raises(ValueError, match="LSTM"):
        layer_inputs(nn.LSTM(2, 2), x)  # an LSTM's inputs are traced by lstm_inputs


def test_wanda_keeps_per_row_the_weights_whose_inputs_are_large():
    # row 0: |w| = (1, 1, 1), inputs' norms (1, 10, 100): keep the third; row 1: |w| = (50, 1, 0.1)
    weight = torch.tensor([[1.0, -1.0, 1.0], [50.0, 1.0, -0.1]])
    norms = torch.tensor([1.0, 10.0, 100.0])
    scores = weight.abs() * norms  # row 1 scores: 50, 10, 10
    mask = wanda_module().per_row_top_k(scores, density=1 / 3)
    assert mask.tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    tied = torch.tensor([[0.0, 0.0, 0.0, 1.0]])  # unseen inputs: equal scores, broken by |W|
    assert wanda_module().per_row_top_k(tied, 0.5, tiebreak=torch.tensor([[3.0, 1.0, 2.0, 0.0]])).tolist() == \
        [[1.0, 0.0, 0.0, 1.0]]
    # every row loses int(sparsity * length) or one more, and the layer reaches the target exactly
    mask = wanda_module().per_row_top_k(torch.rand(10, 27), 0.1)
    assert set(mask.sum(1).tolist()) <= {3.0, 2.0} and mask.sum() == round(0.1 * 270)


def test_input_norms_are_the_calibration_inputs_norms_charged_as_forward_passes(one_thread):
    task = make_task("tiny-mlp", "quick")
    splits = task.load(None)
    ctx = make_context(task, splits.train, splits.val, 0.5, torch.Generator().manual_seed(0))
    calibration = calibration_data.draw(ctx, examples=50)  # a random draw, counted exactly
    assert calibration.examples == 50 and calibration.tokens is None
    assert sum(len(b[-1]) for b in calibration.batches) == 50
    before = ctx._trainer.cost.flops
    norms = input_norms(ctx, calibration)
    charged = ctx._trainer.cost.flops - before
    assert charged == pytest.approx(50 * ctx._trainer.flops.per_example())  # forward only: not 3x
    # the first layer's inputs are the data: the norms over the examples drawn, drawn without replacement
    order = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(0))[:50]
    assert torch.allclose(norms["0.weight"], splits.train.inputs[order].pow(2).sum(0).sqrt(), rtol=1e-5)


@pytest.mark.parametrize("method", ["wanda", "magnitude-oneshot"])
def test_post_training_methods_prune_once_without_retraining(method, one_thread):
    result = run_trial(TrialSpec("tiny-mlp", method, 0.9, 0))
    assert result["status"] == "completed", result["reason"]
    assert result["metrics"]["cost/train_steps_rel"] == 1.0  # the dense training only
    assert result["metrics"]["final/sparsity"] == pytest.approx(0.9, abs=0.005)


def test_input_weighted_scores_refuse_layers_whose_inputs_they_cannot_read():
    ctx = type("Ctx", (), {"model": nn.Sequential(nn.MultiheadAttention(4, 2)), "masks": ["0.in_proj_weight"]})()
    with pytest.raises(ValueError, match="0.in_proj_weight"):  # the harness records it as the trial's reason
        input_norms(ctx, None)


def test_hutchinson_recovers_a_known_hessian_diagonal():
    from sparsebench.library.scores import hessian_diagonal
    w = {"w": torch.tensor([1.0, -2.0, 0.5], requires_grad=True)}
    a = torch.tensor([3.0, 1.0, 0.25])
    coupling = torch.tensor([[0.0, 0.5, 0.0], [0.5, 0.0, -0.3], [0.0, -0.3, 0.0]])

    def diagonal(batch):  # L = ½ Σ a_i w_i²: z ⊙ Hz = a exactly, for any probe
        return 0.5 * (a * w["w"] ** 2).sum()

    def coupled(batch):  # off-diagonal terms average out: E[z_i z_j] = 0
        return diagonal(batch) + 0.5 * w["w"] @ coupling @ w["w"]

    g = torch.Generator().manual_seed(0)
    assert torch.allclose(hessian_diagonal(w, [None], diagonal, g)["w"], a)
    estimate = hessian_diagonal(w, [None] * 4000, coupled, g)["w"]
    assert torch.allclose(estimate, a, atol=0.05)


@pytest.mark.parametrize("curvature", ["gauss-newton", "fisher", "hutchinson"])
def test_obd_prunes_once_and_charges_its_calibration(curvature, one_thread):
    result = run_trial(TrialSpec("tiny-mlp", "obd", 0.9, 0, "quick", {"curvature": curvature}))
    assert result["status"] == "completed", result["reason"]
    assert result["metrics"]["cost/train_steps_rel"] == 1.0
    assert result["metrics"]["cost/train_cost_rel"] > 1.0  # the calibration passes are charged


def test_the_fisher_is_the_mean_squared_per_example_gradient():
    from sparsebench.library.scores import fisher_diagonal
    w = {"w": torch.tensor([2.0, -1.0], requires_grad=True)}
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 1.0]])

    def loss(example):  # ½ (w·x)²: gradient (w·x) x
        return 0.5 * ((example[0] @ w["w"]) ** 2).sum()

    task = make_task("tiny-mlp", "quick")
    examples = list(task.examples((x, torch.zeros(3))))
    assert [len(e[0]) for e in examples] == [1, 1, 1]
    expected = (((x @ w["w"].detach())[:, None] * x) ** 2).mean(0)  # [(2·1)², (−1·1)², (5·3, 5·1)²] / 3
    assert torch.allclose(fisher_diagonal(w, examples, loss)["w"], expected)


def test_a_language_model_batch_splits_into_rows_that_carry_their_state():
    from sparsebench.data.text import Carry, Window
    task = make_task("lstm-ptb", "quick")
    model = task.model()
    inputs = torch.randint(0, 100, (3, 5))
    state = tuple(torch.randn(model.lstm.num_layers, 3, model.lstm.hidden_size) for _ in range(2))
    whole, split = Carry(), Carry()
    whole.state, split.state = state, state
    expected = task.nll(model, (inputs, Window(whole), inputs), reduction="sum")
    total = sum(task.nll(model, one, reduction="sum") for one in task.examples((inputs, Window(split), inputs)))
    assert torch.allclose(total, expected, atol=1e-4)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(split.state, whole.state))  # the carry moved on


def test_sparsegpt_reconstructs_a_pruned_input_from_the_inputs_it_depends_on():
    # x0 = x1 + x2: the weights on x0 (the smallest) can be pruned and moved onto x1 and x2, the
    # columns SparseGPT visits after it, without changing the layer's output
    prune_layer = importlib.import_module(registry.METHODS.get("sparsegpt")[0].__module__).prune_layer
    g = torch.Generator().manual_seed(0)
    rest = torch.randn(512, 2, generator=g, dtype=torch.float64)
    x = torch.cat([rest.sum(1, keepdim=True), rest], 1)
    w = torch.tensor([[0.1, 1.0, 2.0], [-0.2, 0.5, -1.0]], dtype=torch.float64)
    new = prune_layer(w, 2 * x.T @ x / len(x), sparsity=0.2, dampening=1e-8)  # the code's count: int(6 * 0.2) + 1
    assert (new[:, 0] == 0).all() and (new[:, 1:] != 0).all()
    assert torch.allclose(new[:, 1:], w[:, 1:] + w[:, :1], atol=1e-4)  # the pruned weight, moved
    assert (x @ (w - new).T).norm() / (x @ w.T).norm() < 1e-4  # where magnitude pruning loses x0 · w0


def test_sparsegpt_on_a_diagonal_hessian_is_its_general_sweep():
    # an embedding's one-hot inputs: H diagonal, some tokens never seen (H_jj = 0)
    module = importlib.import_module(registry.METHODS.get("sparsegpt")[0].__module__)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 300, generator=g, dtype=torch.float64)
    h = torch.rand(300, generator=g, dtype=torch.float64) * (torch.rand(300, generator=g) > 0.2)
    general = module.prune_layer(w, torch.diag(h), 0.7)
    assert torch.allclose(module.prune_diagonal(w, h, 0.7), general)
    assert (general == 0).double().mean().item() == pytest.approx(0.7, abs=0.01)


def test_an_embeddings_nm_pattern_runs_along_its_dimensions():
    # SparseGPT and ALPS take an embedding as Wᵀ (dimensions × tokens, H diagonal); the pattern the
    # harness checks runs along the stored weight's inputs (weight.view(out, -1)): each token's dimensions
    g = torch.Generator().manual_seed(4)
    w = torch.randn(16, 40, generator=g, dtype=torch.float64)  # 16 dimensions, 40 tokens
    counts = torch.randint(1, 9, (40,), generator=g).double()  # every token seen
    sparsegpt = importlib.import_module(registry.METHODS.get("sparsegpt")[0].__module__)
    alps = importlib.import_module(registry.METHODS.get("alps")[0].__module__)
    pruned = {"sparsegpt": sparsegpt.prune_diagonal(w, counts, 0.5, n=2, m=4),
              "alps": alps.prune_layer(w, counts, 0.5, registry.METHODS.get("alps-2:4")[0](n=2, m=4))}
    for name, new in pruned.items():
        assert pattern_violations({"embedding": new.T}, 2, 4) == [], name
        assert ((new != 0).sum(0) == 8).all(), name  # every token keeps half its dimensions
    # a diagonal H moves no error: SparseGPT keeps, of each token's four, the two of largest w²·H_jj
    ratio = (w ** 2 * (counts + 0.01 * counts.mean())).T.reshape(40, 4, 4)
    expected = torch.zeros_like(ratio).scatter_(2, ratio.topk(2, dim=2).indices, 1.0).reshape(40, 16).T
    assert torch.equal(pruned["sparsegpt"] != 0, expected.bool())


def test_sparsegpt_runs_on_conv_and_linear_layers_without_retraining(one_thread):
    result = run_trial(TrialSpec("tiny-mlp", "sparsegpt", 0.9, 0))
    assert result["status"] == "completed", result["reason"]
    assert result["metrics"]["cost/train_steps_rel"] == 1.0 and result["metrics"]["final/sparsity"] >= 0.9


def test_lstm_matrices_see_their_layer_inputs_and_previous_hidden_states():
    from sparsebench.library.inputs import lstm_inputs
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, 2, batch_first=True).eval()
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        rows, (out, _) = lstm_inputs(lstm, x, None), lstm(x)
    assert torch.equal(rows["weight_ih_l0"], x.reshape(-1, 3))
    hh = rows["weight_hh_l1"].view(2, 5, 4)
    assert (hh[:, 0] == 0).all() and torch.allclose(hh[:, 1:], out[:, :-1], atol=1e-6)  # layer 1's own outputs
    assert rows["weight_ih_l1"].shape == (10, 4)


@pytest.mark.skipif(data_root() is None or not (data_root() / "ptb").exists(), reason="no Penn Treebank in the data root")
@pytest.mark.parametrize("method", ["wanda", "sparsegpt", "wanda-2:4", "sparsegpt-4:8",
                                    *(pytest.param(m, marks=pytest.mark.slow) for m in ("ria", "dsnot", "ria-2:4", "alps-2:4"))])
def test_post_training_methods_on_a_language_model(method, one_thread):
    # lstm-ptb's embedding, LSTM and decoder: Wanda, SparseGPT, RIA, DSnoT and ALPS read them all; N:M
    # patterns hold as the harness checks them, the embedding's included
    task = make_task("lstm-ptb", "quick")
    splits = task.load(data_root())
    train = splits.train.subset(20 * 35 * 8)
    ctx = make_context(task, train, splits.val, 0.5, torch.Generator().manual_seed(0))
    cls, defaults = registry.METHODS.get(method)
    m = cls(**{**defaults, "calibration_tokens": 390})  # 20 windows of 20 tokens, the fewest that hold them
    if method == "sparsegpt":
        from sparsebench.library.inputs import input_covariances
        calibration = calibration_data.draw(ctx, tokens=390)
        hessians = input_covariances(ctx, calibration)
        counts = torch.bincount(torch.cat([b[0].flatten() for b in calibration.batches]), minlength=task.vocab_size)
        assert hessians["embedding.weight"].shape == (task.vocab_size,)  # one-hot inputs: a diagonal
        assert torch.equal(hessians["embedding.weight"], 2 * counts.double() / 20)  # the authors' 2/N Σ x xᵀ
    m.run(ctx)
    assert m.metrics == {"calibration/examples": 20, "calibration/tokens": 400}
    for name, p in ctx.masks.params.items():
        assert (p == 0).double().mean().item() == pytest.approx(0.5, abs=0.01), name
    if cls.structure == "n:m":
        assert pattern_violations(dict(ctx.masks.params), m.n, m.m) == []
