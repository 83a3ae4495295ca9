"""RigL: Rigging the Lottery (Evci, Gale, Menick, Castro & Elsen 2020, "Rigging the Lottery:
Making All Tickets Winners", ICML), Algorithm 1.

Random sparse connectivity at ERK layer densities (§3, ``rigl``; ``rigl-uniform``: every layer
at the target density, the paper's uniform ablation, here without its dense first layer). Every
ΔT = 100 steps until T_end = 75 % of training, each layer drops the k = f(t) * active
smallest-magnitude weights and grows the k inactive connections with the largest dense-gradient
magnitude, f(t) = α/2 (1 + cos(π t / T_end)) with α = 0.3. Grown connections start at zero with
zero momentum; as in the authors' code, grow candidates include the weights just dropped, which
keep their value if regrown (``sparsebench.library.dynamic``). Updates run at t = 0, ΔT, 2ΔT, ... ≤ T_end,
as the reference code's ``is_mask_update_iter`` does.

The dense gradient is needed at update steps only; each one is charged f_D - f_S per example on
top of the sparse step (Appendix H). Deviation: in Algorithm 1 an update step takes no SGD step;
the harness's loop takes one after every callback (with the new connections' gradients zeroed),
a difference of one step in ΔT.
"""
from dataclasses import dataclass

from sparsebench import Choice, Method, Uniform, register_method
from sparsebench.library import dynamic as dst


@register_method("rigl", rule="erk")
@register_method("rigl-uniform", rule="uniform")
@dataclass
class RigL(Method):
    delta_t: int = 100        # ΔT, steps between mask updates
    alpha: float = 0.3        # initial drop fraction
    end: float = 0.75         # T_end as a fraction of training
    rule: str = "erk"         # erk | uniform | er
    bounds = {"rule": ("erk", "uniform", "er"), "delta_t": "[1, inf)", "alpha": "(0, 1]", "end": "(0, 1]"}

    # Evci et al. 2020 (Fig. 5 and Appendix) sweep the drop fraction α and the update interval ΔT
    search_space = {"alpha": Uniform(0.1, 0.5), "delta_t": Choice(50, 100, 200)}

    when = "dynamic"
    criterion = "magnitude/gradient"
    paper = "Evci et al. 2020, Rigging the Lottery: Making All Tickets Winners (ICML)"

    def run(self, ctx):
        dst.random_masks(ctx.masks, ctx.sparsity, self.rule)
        t_end = int(self.end * ctx.total_steps)

        def update(_):
            t = ctx.step
            if t <= t_end:
                fraction = dst.cosine_fraction(self.alpha, t, t_end)
                dst.drop_and_grow(ctx.masks, dst.magnitude(ctx.masks), dst.dense_grad_magnitude(ctx.masks), fraction)
                ctx.charge_dense_gradient(ctx.batch_size)

        ctx.train(every=self.delta_t, callback=update)
