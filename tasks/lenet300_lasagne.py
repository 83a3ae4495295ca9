"""LeNet-300-100 on MNIST as sparse variational dropout's authors feed and initialize it.

Molchanov, Ashukha & Vetrov 2017 (sparse VD), the authors' Theano/Lasagne code
(github.com/ars-ashuha/variational-dropout-sparsifies-dnn): ``data/reader.py`` ``load_mnist`` scales
the pixels by 1/256 and subtracts the training images' mean image (no division by a standard deviation),
and ``experiments/lenet/lenet300-100-ard.py`` draws the weights from Lasagne's ``init.Normal()``,
N(0, 0.01^2), the biases 0 (``nets/layers.py``, ``b=Constant(0.)``). ``lenet300-mnist`` standardizes the
pixels with MNIST's mean and std (inputs about 3.2x as large) and initializes as PyTorch does: sparse VD
prunes a weight by log α = log σ² - log θ², so the scale of the inputs, which sets the scale of the
first layer's weights θ, can move the sparsity it learns. This task is that one difference, for the
reproduction table's investigation of ``vd-300-remaining``; its one profile is ``vd-paper``.

Still not the authors': 5,000 training images held out for validation (they train on all 60,000,
and their mean image is over all 60,000: here over the 55,000 trained on), the linear learning-rate
decay as ``lenet300-mnist``'s ``vd-paper`` steps.
"""
from pathlib import Path

from torch import nn

from sparsebench import Splits, TensorSplit, register_task
from sparsebench.core import registry
from sparsebench.data.vision import MNIST_STATS, load_mnist

registry.load_file(registry.TASKS, Path(__file__).with_name("lenet300_mnist.py"))
LeNet300MNIST = registry.TASKS.get("lenet300-mnist")[0]


@register_task("lenet300-mnist-lasagne")
class LeNet300MNISTLasagne(LeNet300MNIST):
    profiles = {"vd-paper": LeNet300MNIST.profiles["vd-paper"]}

    def model(self):
        model = super().model()
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0.0, 0.01)
                nn.init.zeros_(layer.bias)
        return model

    def load(self, data_root):
        splits = load_mnist(data_root)
        mean, std = MNIST_STATS["MNIST"]

        def pixels(split):  # the standardized tensors back to pixel / 256
            return (split.inputs * std + mean) * (255 / 256)

        centre = pixels(splits.train).mean(0, keepdim=True)
        return Splits(*(TensorSplit(pixels(s) - centre, s.targets) for s in (splits.train, splits.val, splits.test)))
