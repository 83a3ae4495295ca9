"""SET's MLP on MNIST: three hidden layers of 1,000 S-shaped ReLUs, the network of Mocanu et al. 2018.

Mocanu, Mocanu, Stone, Nguyen, Gibescu & Liotta 2018, "Scalable training of artificial neural
networks with adaptive sparse connectivity inspired by network science" (Nature Communications
9:2383): SET-MLP 784-1000-1000-1000-10 on MNIST, ε = 20, ζ = 0.3. The recipe follows the authors'
Keras script (github.com/dcmocanu/sparse-evolutionary-artificial-neural-networks,
``SET-MLP-Keras-Weights-Mask/set_mlp_keras_cifar10.py``, the one the repository has for an MLP; its
CIFAR-10 layers swapped for the paper's MNIST ones): SReLU after every hidden layer (keras-contrib's
``SReLU``, one set of four parameters per unit), dropout 0.3 after each, a dense output layer ("no
need for a sparse output layer"), Glorot-uniform weights and zero biases (Keras's ``Dense``), SGD at
0.01 with momentum 0.9, batch 100, 1,000 epochs, no weight decay. Prunable: the three hidden
matrices. At ε = 20 their Erdős–Rényi densities ε (n_in + n_out) / (n_in n_out) leave 115,680 of
2,784,000 weights: sparsity 0.95845, which ``set``'s ``er`` rule spreads back into those densities.

Deviations: the script re-creates its optimizer every epoch (momentum restarts), here it runs on;
inputs standardized by MNIST's mean and std (the script standardizes each CIFAR-10 pixel: no MNIST
preprocessing is given); 5,000 training images held out for validation, as every MNIST task here.
Not checked against the paper's MNIST table (the figure in ``sparsebench/report/papers.csv`` is
marked unverified). Cost: one epoch is 25–35 s on one CPU core, so ``set-paper`` is 7–10 hours a
trial — the reproduction track's GPU work (``sparsebench run --suite reproduce-gpu``); ``quick``
trains 2 epochs.
"""
import torch
from torch import nn

from sparsebench import Recipe, Task, register_task
from sparsebench.data.vision import load_mnist

HIDDEN = 1000


class SReLU(nn.Module):
    """S-shaped ReLU (Jin et al. 2016) as keras-contrib computes it, per unit: x between t_l and
    t_r = t_l + |t_r'|; beyond them lines of slopes a_l and a_r. Initialized as keras-contrib:
    t_l = 0, a_l ~ U(0, 1), t_r' ~ U(0, 5), a_r = 1."""

    def __init__(self, units: int):
        super().__init__()
        self.t_left = nn.Parameter(torch.zeros(units))
        self.a_left = nn.Parameter(torch.rand(units))
        self.t_right = nn.Parameter(torch.rand(units) * 5)
        self.a_right = nn.Parameter(torch.ones(units))

    def forward(self, x):
        right = self.t_left + self.t_right.abs()
        middle = torch.minimum(torch.maximum(x, self.t_left), right)
        return middle + self.a_left * (x - self.t_left).clamp(max=0) + self.a_right * (x - right).clamp(min=0)


def set_mlp() -> nn.Sequential:
    layers, width = [nn.Flatten()], 784
    for _ in range(3):
        layers += [nn.Linear(width, HIDDEN), SReLU(HIDDEN), nn.Dropout(0.3)]
        width = HIDDEN
    model = nn.Sequential(*layers, nn.Linear(HIDDEN, 10))
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model


@register_task("set-mlp-mnist")
class SETMLPMNIST(Task):
    family = "mlp"
    dataset = "MNIST"
    paper = "Mocanu et al. 2018, Scalable training of artificial neural networks with adaptive sparse connectivity (Nat. Commun.)"
    profiles = {
        "set-paper": Recipe(batch_size=100, lr=0.01, epochs=1000, momentum=0.9),
        "quick": Recipe(batch_size=100, lr=0.01, epochs=2, momentum=0.9),
    }

    def model(self):
        return set_mlp()

    def prunable(self, model):
        return [f"{i}.weight" for i in (1, 4, 7)]  # the hidden matrices; the output layer stays dense

    def load(self, data_root):
        return load_mnist(data_root)
