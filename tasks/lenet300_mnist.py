"""LeNet-300-100 on MNIST, the fully connected network of Frankle & Carbin 2019.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural
Networks" (ICLR), Figure 2: 784-300-100-10 with ReLU, Adam at learning rate 1.2e-3, batch 60,
50,000 iterations, 5,000 training images held out for validation. Prunable: the three weight
matrices (the paper prunes all of them, the output layer at half the rate in its own
experiments); biases are not pruned. Reference: dense test accuracy about 98 %.
"""
from torch import nn

from sparsebench import Recipe, Task, register_task
from sparsebench.data.vision import load_mnist


def lenet_300_100() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


@register_task("lenet300-mnist")
class LeNet300MNIST(Task):
    family = "mlp"
    dataset = "MNIST"
    paper = "Frankle & Carbin 2019, The Lottery Ticket Hypothesis (ICLR)"
    profiles = {
        "full": Recipe(batch_size=60, lr=1.2e-3, steps=50_000, optimizer="adam"),
        "quick": Recipe(batch_size=60, lr=1.2e-3, epochs=2, optimizer="adam"),
    }

    def model(self):
        return lenet_300_100()

    def load(self, data_root):
        return load_mnist(data_root)
