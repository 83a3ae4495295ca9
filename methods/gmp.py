"""Gradual magnitude pruning (GMP) during training, with the cubic sparsity schedule.

Zhu & Gupta 2017, "To prune, or not to prune: exploring the efficacy of pruning for model
compression" (arXiv:1710.01878; ICLR 2018 workshop), §3: every Δt steps from step t0, the
smallest-magnitude weights of each layer are masked until the layer reaches

    s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n Δt))^3,   t in {t0, t0 + Δt, ..., t0 + n Δt},

then the masks stay fixed and training continues to the end of the schedule, letting the
network recover. Pruning is layer-wise in the paper (each pruned layer is brought to the same
sparsity s_t; ``gmp``); ``gmp-global`` ranks all layers together instead.

Defaults: s_i = 0 and Δt = 100 steps (the paper found Δt between 100 and 1000 steps makes a
negligible difference; 100 is also tensorflow/model_pruning's default frequency). The paper sets
t0 and n per model in steps; here they are fractions of the recipe's training: pruning from 20 %
to 80 % of training (the GMP configuration of Kusupati et al. 2020's reference code, epochs 20 to
79 of 100), so that the last fifth of training recovers from the final pruning. On tasks whose
pruning window is shorter than ten pruning steps of Δt, Δt shrinks to a tenth of the window.
"""
from __future__ import annotations

from dataclasses import dataclass

from sparsebench import Method, Uniform, magnitude_scores, register_method
from sparsebench.library.schedules import cubic_sparsity


@register_method("gmp", rule="uniform")
@register_method("gmp-global", rule="global")
@dataclass
class GradualMagnitude(Method):
    initial_sparsity: float = 0.0  # s_i
    begin: float = 0.2             # t0, as a fraction of training
    end: float = 0.8               # t0 + n Δt, as a fraction of training
    frequency: int = 100           # Δt in steps
    rule: str = "uniform"          # uniform: every layer at s_t (the paper) | global
    bounds = {"rule": ("uniform", "global"), "initial_sparsity": "[0, 1)", "begin": "[0, 1]", "end": "[0, 1]", "frequency": "[1, inf)"}

    # the schedule's begin and end (Zhu & Gupta 2017 §3 leave them to the user; Gale et al. 2019 tune them)
    search_space = {"begin": Uniform(0.0, 0.4), "end": Uniform(0.5, 0.9)}

    when = "during"
    criterion = "magnitude"
    paper = "Zhu & Gupta 2017, To prune, or not to prune: exploring the efficacy of pruning for model compression"

    def schedule(self, total_steps: int) -> tuple[int, int, int]:
        """(t0, n, Δt) in steps for a training of ``total_steps``; t0 is a multiple of Δt."""
        window = (self.end - self.begin) * total_steps
        dt = max(1, min(self.frequency, int(window // 10)))
        t0 = dt * round(self.begin * total_steps / dt)
        n = max(1, round(window / dt))
        while t0 + n * dt > total_steps - 1 and n > 1:  # the last pruning step must be trained
            n -= 1
        return t0, n, dt

    def run(self, ctx):
        t0, n, dt = self.schedule(ctx.total_steps)

        def prune(t):
            if t0 <= t <= t0 + n * dt:
                s_t = cubic_sparsity(t, self.initial_sparsity, ctx.sparsity, t0, n, dt)
                ctx.masks.prune(magnitude_scores(ctx.masks), s_t, rule=self.rule)

        ctx.train(every=dt, callback=prune)
