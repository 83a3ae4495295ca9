"""Magnitude pruning at initialization, then training.

The baseline of Frankle, Dziugaite, Roy & Carbin 2021, "Pruning Neural Networks at
Initialization: Why Are We Missing the Mark?" (ICLR), §3: remove the weights of smallest
magnitude |θ0| at initialization, globally over the prunable layers, then train with the standard
recipe. The score reads no data, so the model's mode (``score_mode``) does not matter. Its
sanity checks (``+shuffle``, ``+reinit``, ``+invert``) are those of the same paper.
"""
from dataclasses import dataclass

from sparsebench.library.ablations import PruneAtInit, register_with_ablations
from sparsebench.library.scores import magnitude_scores


@register_with_ablations("magnitude-init")
@dataclass
class MagnitudeAtInit(PruneAtInit):
    criterion = "magnitude"
    paper = "Frankle et al. 2021, Pruning Neural Networks at Initialization: Why Are We Missing the Mark? (ICLR)"
    untuned = "the score |w| at initialization has no hyperparameter"

    def score(self, ctx, weights):
        return magnitude_scores(ctx.masks)
