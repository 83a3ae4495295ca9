"""OWL: outlier-weighted layerwise sparsity, for Wanda and SparseGPT.

Yin, Wu, Zhang, Hsieh, Wang, Jaiswal, Pechenizkiy, Liang, Mocanu, Wang & Liu 2024, "Outlier Weighed
Layerwise Sparsity (OWL): A Missing Secret Sauce for Pruning LLMs to High Sparsity" (ICML); code:
github.com/luuyin/OWL, ``lib/prune_all.py`` (``prune_wanda_outlier``, ``check_outlier_mean``; the
SparseGPT twin ``prune_sparsegpt_outlier``).

Algorithm: one pass of the calibration data through the dense network gives every weight its
Wanda score |W_ij|·‖X_j‖; a block's outlier ratio D is the share (in %) of its scores above M times
their mean (all its layers' scores together); the ratios are scaled to [0, 2λ]
(``(D − min) / (max − min) · 2λ``) and shifted so that their mean is the target density 1 − s; a
block keeps that density (a sparsity ≤ 0 becomes 0.01, as the code's), and is then pruned by Wanda
(per output row) or SparseGPT at its own sparsity, block by block in the authors' order
(:class:`~sparsebench.library.posttraining.LayerwisePruning`). Defaults: M = 5, λ = 0.08 (the
repository's scripts and README, ``--Hyper_m 5 --Lamda 0.08``); the tuned track searches the
paper's grid, M ∈ {3, 5, 7, 10} and λ ∈ {0.02, 0.05, 0.08, 0.1, 0.2}.

Deviation: the code centres the densities on their plain mean, which keeps the target only where
every block has as many weights (the decoder layers of an LLM); here the mean is weighted by the
blocks' sizes, so that the network's sparsity is the target (equal to the code's for equal blocks).
A network of one block, or of blocks with equal ratios, is pruned uniformly (the code would divide
by zero). A sparsity of 1 or more (a small block far below the weighted mean, e.g. LeNet-300-100's
output layer at 90 %: 1.056) becomes 0.99, as the code's floor makes one of 0 or less 0.01.
Measured on LeNet-300-100 (``full``, seed 0, 128 images): ``owl-wanda`` gives its layers 0.696 /
0.723 / 0.856 at 70 % and reaches 79.02 % test accuracy, against Wanda's 92.06 % — the output layer's
few outliers cost it; OWL's premise is the LLM's, where every block is a decoder layer.
On ``transformer-wikitext2`` (two decoder blocks; ``pretrained``, seed 0) OWL trails its base at
every target — Wanda 204.6 / 347.9 / 3,836 test perplexity at 50 / 70 / 90 %, ``owl-wanda`` 212.5 /
416.6 / 211,665; SparseGPT 193.0 / 218.0 / 770.6, ``owl-sparsegpt`` 194.8 / 234.3 / 199,446 — and the
run's layer densities say why: with two blocks the min-max scaling puts one at the bottom of the
range and one at the top whatever their ratios, so the spread is always the full ±λ (densities
0.42 / 0.58 at 50 %, 0.02 / 0.18 at 90 %: the first block 98 % sparse). The rule is the code's; its
premise, many blocks whose ratios spread, is the LLM's (on ``minilm-sst2``'s six blocks, n = 3,
``owl-wanda`` 81.96 % against Wanda's 80.12 % at 70 %, 60.78 % against 61.20 % at 90 %). The tuned
track searches λ.
"""
from dataclasses import dataclass
from pathlib import Path

import torch

from sparsebench import Choice, register_method
from sparsebench.core import registry
from sparsebench.library.inputs import as_matrix, blocks, input_norms, owners


def sibling(method: str) -> type:
    """The class of ``method``, registered by its file beside this one (loaded once)."""
    registry.load_file(registry.METHODS, Path(__file__).with_name(f"{method}.py"))
    return registry.METHODS.get(method)[0]


Wanda, SparseGPT = sibling("wanda"), sibling("sparsegpt")


def outlier_ratio(scores: torch.Tensor, m: float) -> float:
    """The share (%) of ``scores`` above ``m`` times their mean (``check_outlier_mean``)."""
    return 100.0 * float((scores > m * scores.mean()).double().mean())


def owl_sparsities(ratios: list[float], sizes: list[int], sparsity: float, lamda: float) -> list[float]:
    """Each block's sparsity from its outlier ratio (see the module); ``sizes`` weigh the mean."""
    d = torch.tensor(ratios, dtype=torch.float64)
    if len(d) < 2 or d.max() == d.min():
        return [sparsity] * len(d)
    d = (d - d.min()) / (d.max() - d.min()) * lamda * 2
    w = torch.tensor(sizes, dtype=torch.float64)
    density = d - (d * w).sum() / w.sum() + (1.0 - sparsity)
    return [min(s, 0.99) if s > 0 else 0.01 for s in (1.0 - density).tolist()]


@dataclass
class OutlierWeighted:
    """The OWL layer sparsities, mixed into a layer-wise pruning method."""

    outlier_m: float = 5.0   # M: an outlier scores above M times the mean
    lamda: float = 0.08      # λ: the densities span 2λ
    bounds = {"outlier_m": "(0, inf)", "lamda": "[0, 0.5]"}
    search_space = {"outlier_m": Choice(3.0, 5.0, 7.0, 10.0), "lamda": Choice(0.02, 0.05, 0.08, 0.1, 0.2)}
    untuned = "the paper's defaults M = 5, λ = 0.08"

    def sparsities(self, ctx, calibration):
        norms, modules, params = input_norms(ctx, calibration), owners(ctx), ctx.masks.params
        groups = blocks(ctx)
        ratios = [outlier_ratio(torch.cat([(as_matrix(modules[n], params[n].detach().abs()) * norms[n]).flatten()
                                           for n in names]), self.outlier_m) for names in groups]
        sizes = [sum(params[n].numel() for n in names) for names in groups]
        per_block = owl_sparsities(ratios, sizes, ctx.sparsity, self.lamda)
        return {n: s for names, s in zip(groups, per_block) for n in names}


@register_method("owl-wanda", retrain="none")
@dataclass
class OWLWanda(OutlierWeighted, Wanda):
    version = "1"
    paper = "Yin et al. 2024, Outlier Weighed Layerwise Sparsity (OWL) (ICML), on Wanda"


@register_method("owl-sparsegpt", retrain="none")
@dataclass
class OWLSparseGPT(OutlierWeighted, SparseGPT):
    version = "1"
    paper = "Yin et al. 2024, Outlier Weighed Layerwise Sparsity (OWL) (ICML), on SparseGPT"

