"""Effective sparsity and collapse on hand-built networks with known disconnected paths."""
import torch
import torch.nn.functional as F
from torch import nn

from sparsebench.library.connectivity import connectivity


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


def test_dense_network_is_fully_effective():
    model = mlp()
    c = connectivity(model, ["0.weight", "2.weight"], torch.randn(2, 4))
    assert c.effective_sparsity == 0.0 and not c.collapsed and c.outputs == 3


def test_unit_without_input_disconnects_its_outgoing_weights():
    model = mlp()
    with torch.no_grad():
        model[0].weight[1].zero_()  # hidden unit 1 has no incoming weight
    c = connectivity(model, ["0.weight", "2.weight"], torch.randn(2, 4))
    # zeros: 4; disconnected nonzeros: the 3 outgoing weights of unit 1
    assert c.effective["2.weight"][:, 1].sum() == 0 and c.effective["2.weight"][:, [0, 2, 3, 4]].all()
    assert abs(c.effective_sparsity - (4 + 3) / 35) < 1e-12
    assert c.dead_units == {"0.weight": 1, "2.weight": 0}


def test_unit_without_output_disconnects_its_incoming_weights_despite_bias():
    model = mlp()
    with torch.no_grad():
        model[2].weight[:, 3].zero_()  # hidden unit 3 reaches no output
        model[0].bias.fill_(1.0)       # a bias is not a path
    c = connectivity(model, ["0.weight", "2.weight"], torch.randn(2, 4))
    assert c.effective["0.weight"][3].sum() == 0
    assert abs(c.effective_sparsity - (3 + 4) / 35) < 1e-12


def test_dead_output_and_dead_layer_are_flagged():
    model = mlp()
    with torch.no_grad():
        model[2].weight[0].zero_()  # class 0 has no incoming weight
    c = connectivity(model, ["0.weight", "2.weight"], torch.randn(2, 4))
    assert c.dead_outputs == 1 and c.collapsed and "1 of 3 outputs" in c.describe()
    with torch.no_grad():
        model[2].weight.zero_()
    c = connectivity(model, ["0.weight", "2.weight"], torch.randn(2, 4))
    # the output layer is empty, so the first layer reaches nothing either
    assert c.dead_layers == ["0.weight", "2.weight"] and c.effective_sparsity == 1.0 and c.dead_outputs == 3


class Residual(nn.Module):
    """x -> relu(conv2(relu(bn(conv1(x)))) + x) -> pool -> fc."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = F.relu(self.stem(x))
        h = F.relu(self.conv2(F.relu(self.bn(self.conv1(h)))) + h)
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


def test_shortcut_keeps_a_path_alive_where_the_residual_branch_is_cut():
    torch.manual_seed(0)
    model = Residual()
    names = ["stem.weight", "conv1.weight", "conv2.weight", "fc.weight"]
    with torch.no_grad():
        model.conv2.weight.zero_()  # the residual branch reaches nothing
        model.bn.running_mean.fill_(5.0)  # statistics must not open or close paths
    c = connectivity(model, names, torch.randn(2, 2, 6, 6))
    assert c.effective["conv1.weight"].sum() == 0  # feeds only the cut branch
    assert c.effective["stem.weight"].all() and c.effective["fc.weight"].all()  # the shortcut carries them
    assert c.dead_layers == ["conv1.weight", "conv2.weight"] and c.dead_outputs == 0


def test_channel_cut_in_the_stem_disconnects_downstream_only_where_no_other_path():
    torch.manual_seed(0)
    model = Residual()
    names = ["stem.weight", "conv1.weight", "conv2.weight", "fc.weight"]
    with torch.no_grad():
        model.stem.weight[2].zero_()      # channel 2 gets no input from the stem
        model.conv2.weight[2].zero_()     # and nothing from the residual branch
    c = connectivity(model, names, torch.randn(2, 2, 6, 6))
    assert c.effective["fc.weight"][:, 2].sum() == 0        # channel 2 reaches the output with nothing
    assert c.effective["conv1.weight"][:, 2].sum() == 0     # conv1's input from channel 2 is empty
    assert c.effective["fc.weight"][:, [0, 1, 3]].all()


def test_lstm_weights_are_traced_through_time():
    torch.manual_seed(0)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 6)
            self.rnn = nn.LSTM(6, 5, batch_first=True)
            self.out = nn.Linear(5, 10)

        def forward(self, x):
            return self.out(self.rnn(self.emb(x))[0])

    model = LM()
    names = ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "out.weight"]
    batch = torch.randint(0, 10, (8, 7))
    assert connectivity(model, names, batch).effective_sparsity == 0.0
    with torch.no_grad():
        model.out.weight.zero_()
    c = connectivity(model, names, batch)
    assert c.effective_sparsity == 1.0 and c.dead_outputs == 10


def test_an_embedding_row_counts_where_its_token_could_be_read_and_max_pooling_keeps_paths():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(12, 4), nn.Flatten(), nn.Linear(4 * 3, 5))
    with torch.no_grad():
        model[0].weight[:, 2].zero_()  # feature 2 is never set by any token
    c = connectivity(model, ["0.weight", "2.weight"], torch.randint(0, 12, (1, 3)))
    assert c.effective["0.weight"][:, [0, 1, 3]].all()  # every token's row, not only those of a batch
    w = c.effective["2.weight"].reshape(5, 3, 4)
    assert w[:, :, 2].sum() == 0 and w[:, :, [0, 1, 3]].all()
    cnn = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    assert connectivity(cnn, ["0.weight", "4.weight"], torch.randn(1, 1, 8, 8)).effective_sparsity == 0.0
