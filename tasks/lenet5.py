"""LeNet-5 (the Caffe variant) on MNIST and Fashion-MNIST, as pruned by SNIP.

Lee, Ajanthan & Torr 2019, "SNIP: Single-shot Network Pruning based on Connection Sensitivity"
(ICLR), LeNet-5-Caffe (network of github.com/namhoonlee/snip-public, ``snip/network.py``): conv
5x5 with 20 filters, 2x2 max pooling, conv 5x5 with 50 filters, 2x2 max pooling, linear
800 -> 500, ReLU, linear 500 -> 10; no ReLU after the convs, as in Caffe's LeNet. 431,080
parameters. Initialization as SNIP's code: weights with variance 1/fan-in (TensorFlow's
variance scaling; a normal here where TF truncates), biases zero.

``full`` recipe (SNIP §5.1 and the defaults of ``snip/main.py``): SGD, batch 100, weight decay
5e-4, learning rate 0.1 multiplied by 0.1 every 25k iterations. SNIP's text says momentum 0.9,
its code defaults to plain SGD; with momentum 0.9 at learning rate 0.1 the dense network
diverges within 10 steps here, so ``full`` uses plain SGD like the code. SNIP does not state
the total in the text we checked; ``full`` trains 100k iterations (four learning-rate stages).
SNIP holds out 10 % of the training images; here the last 5,000, as for LeNet-300-100. Dense
reference (SNIP Table 2): 0.8 % test error on MNIST. SNIP has no Fashion-MNIST result; the same
recipe is used there. ``quick``: one epoch (550 steps) with the same schedule shape.

Prunable: the weights of both convs and both linear layers (SNIP prunes all weights, not the
biases).
"""
from collections import OrderedDict

from torch import nn

from sparsebench import Recipe, Task, register_task
from sparsebench.data.vision import load_mnist


def lenet5() -> nn.Module:
    model = nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, 20, 5), pool1=nn.MaxPool2d(2), conv2=nn.Conv2d(20, 50, 5), pool2=nn.MaxPool2d(2),
        flatten=nn.Flatten(), fc1=nn.Linear(800, 500), relu=nn.ReLU(), fc2=nn.Linear(500, 10)))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
            nn.init.zeros_(m.bias)
    return model


SNIP = dict(batch_size=100, lr=0.1, weight_decay=5e-4, schedule="step", milestones=(0.25, 0.5, 0.75))


@register_task("lenet5-mnist")
class LeNet5MNIST(Task):
    family = "cnn"
    dataset = "MNIST"
    paper = "Lee et al. 2019, SNIP: Single-shot Network Pruning based on Connection Sensitivity (ICLR)"
    profiles = {"full": Recipe(steps=100_000, **SNIP), "quick": Recipe(epochs=1, **SNIP)}
    source = "MNIST"  # torchvision's dataset of that name

    def model(self):
        return lenet5()

    def load(self, data_root):
        return load_mnist(data_root, self.source)


@register_task("lenet5-fashionmnist")
class LeNet5FashionMNIST(LeNet5MNIST):
    dataset = "Fashion-MNIST"
    source = "FashionMNIST"
