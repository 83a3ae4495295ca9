"""LeNet-300-100 on MNIST, the fully connected network of Frankle & Carbin 2019.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural
Networks" (ICLR), Figure 2: 784-300-100-10 with ReLU, Adam at learning rate 1.2e-3, batch 60,
50,000 iterations, 5,000 training images held out for validation. Prunable: the three weight
matrices (the paper prunes all of them, the output layer at half the rate in its own
experiments); biases are not pruned. Reference: dense test accuracy about 98 %.

Profiles of the reproduction track (``sparsebench run --suite reproduce``; each paper's own recipe
as far as it states one, and what it leaves unsaid chosen here; the published figures are in
``sparsebench/report/papers.csv``). ``full`` is already Frankle & Carbin's recipe, for the lottery
rows (they report test accuracy at the early-stopping iteration, the minimum of validation loss;
the harness evaluates the weights after the 50,000 iterations).

- ``snip-paper``: Lee et al. 2019 (SNIP), §5: SGD, batch 100, weight decay 5e-4, learning rate
  0.1 multiplied by 0.1 every 25k iterations, 10 % of the training images held out (here the last
  5,000, as in every profile). Unsaid or departed from: momentum (the text says 0.9, their code
  github.com/namhoonlee/snip-public ``snip/main.py`` defaults to plain SGD; plain SGD here, as the
  LeNet-5 ``full`` profile, where momentum 0.9 at 0.1 diverged), the total (100k iterations,
  four learning-rate stages, as LeNet-5's ``full``), the input scaling (ours: MNIST mean and std).
  (The code's LeNet defaults are other still: 10k iterations at a constant 0.1, no weight decay.)
- ``snip-paper-momentum``: ``snip-paper`` with the text's momentum 0.9, the lead left by SNIP's
  rows that do not reproduce under ``snip-paper``.
- ``han-paper``: Han et al. 2015 state no LeNet recipe beyond training in Caffe; here Caffe's
  LeNet example solver (``examples/mnist/lenet_solver.prototxt``): SGD, momentum 0.9, weight decay
  5e-4, learning rate 0.01, batch 64, 10,000 iterations, its ``inv`` policy (0.01 (1 + 1e-4 t)^-0.75,
  0.6x at the end) approximated by a step schedule (x0.944 at every tenth: 0.594x at the end).
  Their retraining schedule and iteration count are not stated either: ``magnitude*`` retrain with
  the whole schedule again (learning-rate rewinding), ``lr-rewind`` prunes iteratively.
- ``vd-paper``: Molchanov et al. 2017 (sparse VD), the authors' code
  (github.com/ars-ashuha/variational-dropout-sparsifies-dnn, ``experiments/lenet/lenet300-100-ard.py``
  and ``nets/optpolicy.py``): Adam at 1e-3, batch 100, 200 epochs, the learning rate constant for
  100 epochs then linear to 0 (``lr_linear``), approximated by a step schedule (x0.6 at 60, 70, 80
  and 90 % of training), no weight decay. Unsaid here: their inputs are the pixels / 256 minus the
  mean image (``data/reader.py``) and their weights drawn from N(0, 0.01^2) (Lasagne's
  ``init.Normal``); ours: the task's (``lenet300-mnist-lasagne`` has theirs).
- ``l0-paper``: Louizos et al. 2018 (L0), the authors' code (github.com/AMLab-Amsterdam/
  L0_regularization, ``train_lenet5.py``; the MLP script has the same defaults): Adam at 1e-3
  constant, batch 100, 200 epochs; their weight decay 5e-4 is a gate-weighted L2 term of the
  penalty (``l0_layers.py``), left out by sparsebench's ``l0`` (see its docstring), so none here.
"""
from torch import nn

from sparsebench import Recipe, Task, register_task
from sparsebench.data.vision import load_mnist

CAFFE_INV_STEPS = tuple(k / 10 for k in range(1, 10))  # Caffe's ``inv`` policy as 9 steps (``han-paper``)


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
        # the reproduction track's recipes (module docstring)
        "snip-paper": Recipe(batch_size=100, lr=0.1, steps=100_000, weight_decay=5e-4, schedule="step",
                             milestones=(0.25, 0.5, 0.75)),
        "snip-paper-momentum": Recipe(batch_size=100, lr=0.1, steps=100_000, momentum=0.9, weight_decay=5e-4,
                                      schedule="step", milestones=(0.25, 0.5, 0.75)),
        "han-paper": Recipe(batch_size=64, lr=0.01, steps=10_000, momentum=0.9, weight_decay=5e-4,
                            schedule="step", milestones=CAFFE_INV_STEPS, gamma=0.944),
        "vd-paper": Recipe(batch_size=100, lr=1e-3, epochs=200, optimizer="adam", schedule="step",
                           milestones=(0.6, 0.7, 0.8, 0.9), gamma=0.6),
        "l0-paper": Recipe(batch_size=100, lr=1e-3, epochs=200, optimizer="adam"),
    }

    def model(self):
        return lenet_300_100()

    def load(self, data_root):
        return load_mnist(data_root)
