import torch
from torch import nn

from sparsebench.core.flops import count_forward_flops


def test_linear_and_conv_flops_scale_with_density():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    x = torch.randn(5, 3, 4, 4)
    f = count_forward_flops(model, ["0.weight", "2.weight"], lambda: model(x), 5)
    conv = 2 * 8 * 16 * 3 * 9  # per example: outputs x MACs per output
    linear = 2 * 128 * 10
    assert f.prunable["0.weight"] / 5 == conv and f.prunable["2.weight"] / 5 == linear
    assert f.per_example() == conv + linear
    assert f.per_example({"0.weight": 0.1, "2.weight": 0.5}) == 0.1 * conv + 0.5 * linear


def test_lstm_flops_are_counted():
    model = nn.LSTM(10, 20, num_layers=2)
    x = torch.randn(7, 3, 10)  # (time, batch, features)
    f = count_forward_flops(model, ["weight_ih_l0", "weight_hh_l0"], lambda: model(x), 3)
    weights = 4 * 20 * 10 + 4 * 20 * 20 + 2 * (4 * 20 * 20)
    assert f.total == 2 * weights * 7 * 3
    assert f.prunable["weight_ih_l0"] + f.prunable["weight_hh_l0"] == 2 * (4 * 20 * 10 + 4 * 20 * 20) * 21
