"""Lottery tickets measured as their paper measures them: at the early-stopping iteration.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis" (ICLR), §2 and Figures 1, 3, 4: every network
(the original one and each ticket) is judged at the iteration of its minimum validation loss, the
"early-stopping iteration", a proxy of how fast it learns, and by its test accuracy there. ``lottery``
(``methods/lottery.py``) runs the same algorithm and reports the network after the full schedule, as
every other method on the board is reported; ``lottery-es`` and ``lottery-reinit-es`` run it with the
first and the last trainings tracked (:class:`sparsebench.library.early_stopping.EarlyStopping`): the
original network's and the ticket's early-stopping iterations are recorded, and the ticket is
restored to its weights at its own, so that its test metric is the paper's "test accuracy at early
stopping". The rounds between are trained as ``lottery`` trains them (the same mask for the same seed).

Validation every ``every`` = 100 iterations: the interval of the authors' 2018 re-implementation
(github.com/google-research/lottery-ticket-hypothesis, ``mnist_fc/lottery_experiment.py``,
``test_interval: 100``; it evaluates the test set there and holds no validation set out, the paper's
§2 does); at LeNet-300-100's 50k iterations it places the iteration within 0.2 % of the schedule.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

from sparsebench import register_method
from sparsebench.core import registry
from sparsebench.library.ablations import reinitialize
from sparsebench.library.early_stopping import EarlyStopping

registry.load_file(registry.METHODS, Path(__file__).with_name("lottery.py"))
IterativeMagnitude = registry.METHODS.get("lottery")[0]
num_rounds = sys.modules[IterativeMagnitude.__module__].num_rounds


@register_method("lottery-es", rule="layerwise", rewind="weights", rewind_fraction=0.0)
@register_method("lottery-reinit-es", rule="layerwise", rewind="weights", rewind_fraction=0.0, reinit=True)
@dataclass
class EarlyStoppedLottery(IterativeMagnitude):
    every: int = 100  # iterations between two validations of a tracked training
    bounds = {**IterativeMagnitude.bounds, "every": "[1, inf)"}

    def __post_init__(self):
        super().__post_init__()
        if self.rewind != "weights" or self.rewind_fraction or self.rewind_steps:
            raise ValueError("early-stopped tickets reset to the original initialization (rewind='weights', k = 0)")

    def space(self, sparsity):
        return {"rate": super().space(sparsity)["rate"]}

    def run(self, ctx):
        stop = EarlyStopping(ctx, self.every)
        theta0 = ctx.snapshot()
        dense_iteration = stop.train()                          # the original network, tracked
        rounds = num_rounds(ctx.sparsity, self.rate)
        for r in range(1, rounds + 1):
            self.prune_round(ctx, last=r == rounds)
            ctx.restore(theta0)                                 # survivors back to θ0, pruned stay zero
            if r < rounds:
                ctx.train()
        if self.reinit:
            reinitialize(ctx)                                   # the ticket's mask, a new random init
        iteration = stop.train()                                # the ticket, tracked
        stop.restore()                                          # ... and judged at its early stop
        self.metrics = {"early_stop/iteration": iteration, "early_stop/dense_iteration": dense_iteration,
                        "early_stop/val_loss": stop.best_loss}
