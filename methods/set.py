"""SET: Sparse Evolutionary Training (Mocanu, Mocanu, Stone, Nguyen, Gibescu & Liotta 2018,
"Scalable training of artificial neural networks with adaptive sparse connectivity inspired by
network science", Nature Communications 9:2383), Algorithm 1.

Erdős–Rényi connectivity (layer density ∝ (n_in + n_out) / (n_in n_out), rule ``er``); after
each training epoch (ΔT = one epoch, the paper's default) each layer removes the fraction ζ = 0.3
of its smallest positive and of its largest negative weights (the ζ of each sign closest to
zero) and adds as many random connections, so per-layer counts are constant. The paper's code
initializes new connections randomly; here they start at zero, as in RigL's reimplementation
of SET, so that the harness's masks hold. The later literature (RigL's SET baseline) instead
updates every ΔT = 100 steps with a cosine-decayed ζ and stops at 75 % of training: pass
``delta_t=100, anneal="cosine", end=0.75``.
"""
from dataclasses import dataclass

import torch

from sparsebench import Method, Uniform, register_method
from sparsebench.library import dynamic as dst


def signwise_rank(w: torch.Tensor) -> torch.Tensor:
    """Rank of |w| among the weights of its sign, as a fraction in [0, 1), and -1 for zeros: dropping
    the lowest ζ of the active weights drops the zeros and ζ of each sign (up to rounding)."""
    score = torch.full_like(w, -1.0, dtype=torch.float)
    for part in (w > 0, w < 0):
        values = w[part].abs()
        score[part] = values.argsort().argsort().float() / max(1, values.numel())
    return score


@register_method("set")
@dataclass
class SET(Method):
    zeta: float = 0.3          # fraction removed at each update
    delta_t: int = 0           # steps between updates; 0: one epoch (the paper)
    anneal: str = "constant"   # constant (the paper) | cosine
    end: float = 1.0           # last update, as a fraction of training
    bounds = {"anneal": ("constant", "cosine"), "zeta": "(0, 1]", "delta_t": "[0, inf)", "end": "(0, 1]"}

    # ζ, the fraction rewired at each update (Mocanu et al. 2018 use 0.3)
    search_space = {"zeta": Uniform(0.1, 0.5)}

    when = "dynamic"
    criterion = "magnitude/random"
    paper = "Mocanu et al. 2018, Scalable training of artificial neural networks with adaptive sparse connectivity (Nat. Commun.)"

    def run(self, ctx):
        dst.random_masks(ctx.masks, ctx.sparsity, "er")
        every, t_end = self.delta_t or ctx.steps_per_epoch, int(self.end * ctx.total_steps)

        def evolve(_):
            t = ctx.step
            if 0 < t <= t_end:  # after an epoch's training, not at initialization
                zeta = self.zeta if self.anneal == "constant" else dst.cosine_fraction(self.zeta, t, t_end)
                drop = {n: signwise_rank(p.detach()) for n, p in ctx.masks.params.items()}
                dst.drop_and_grow(ctx.masks, drop, dst.random_scores(ctx.masks), zeta)

        ctx.train(every=every, callback=evolve)
