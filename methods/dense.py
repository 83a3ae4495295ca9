"""Dense training: no pruning, the reference row of every table."""
from dataclasses import dataclass

from sparsebench import Method, register_method


@register_method("dense")
@dataclass
class Dense(Method):
    when = "none"
    criterion = "none"
    paper = "—"
    prunes = False
    untuned = "the dense reference has no method hyperparameters: its training is the task's recipe"

    def run(self, ctx):
        ctx.train()
