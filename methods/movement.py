"""Movement pruning: learned scores, pruning while fine-tuning a trained or pretrained model.

Sanh, Wolf & Rush 2020, "Movement Pruning: Adaptive Sparsity by Fine-Tuning" (NeurIPS), §4; code:
github.com/huggingface/transformers, ``examples/research_projects/movement-pruning``
(``emmental/modules/binarizer.py``: ``TopKBinarizer``, ``ThresholdBinarizer``;
``emmental/modules/masked_nn.py``: ``MaskedLinear``; ``masked_run_squad.py``: ``schedule_threshold``,
``regularization``, the optimizer's parameter groups and the defaults of its arguments).

Algorithm: start from a trained model; fine-tune it with a score S_ij per prunable weight. The
forward pass uses W' = W ⊙ M(S); the backward pass treats M as the identity
(straight-through), so ∂L/∂S = ∂L/∂W' ⊙ W, and S grows for weights moving away from zero.

- ``movement`` (the paper's movement pruning, ``--pruning_method topK``): M = Top_v(S), the
  fraction v of highest scores in each layer (the authors' default; ``rule="global"`` is their
  ``--global_topk``). v falls from 1 to 1 - target on Zhu & Gupta's cubic schedule with an initial
  and a final warm-up (``schedule_threshold``), so the target is reached exactly.
- ``soft-movement`` (``sigmoied_threshold``): M = [σ(S) > τ] with τ rising on the same schedule
  from 0 to ``final_threshold`` = 0.1, and the penalty λ_t · mean over layers of ‖σ(S)‖₁ / n
  added to the loss, λ_t = λ · τ_t / τ (``regularization(mode="l1")``); at least 0.5 % of each
  layer is kept (``ThresholdBinarizer``'s floor). The sparsity is learned: ``exact_sparsity = False``.

Defaults, from the authors' README commands and ``masked_run_squad.py``: scores initialized to
the constant 0 (``--mask_init constant --mask_scale 0.``; ``uniform`` and ``kaiming`` are theirs
too), trained by their own Adam at ``mask_scores_learning_rate`` 1e-2 without weight decay, on a
linear schedule with warm-up (their one scheduler over all groups, ``warmup_steps`` = the initial
warm-up here); v (τ) held for the first 10 % of fine-tuning and at its final value for the last
20 % (``--initial_warmup 1 --final_warmup 2`` × ``--warmup_steps 5400`` of 10 epochs).
The final masks are the last M; the zeros are made real in the weights.

Which trained model: ``movement`` and ``soft-movement`` (``start="trained"``) train the dense model
first (the harness's shared dense training, the one the post-training methods start from, reused
through the checkpoint store) and fine-tune it with the scores; on a task trained from scratch that
trained model is the pretrained model of the paper. ``movement-during`` and ``soft-movement-during``
(``start="initial"``) learn the scores during the task's own training from the task's initial
weights: on a task whose model is pretrained (``minilm-sst2``) the task's training *is* the
fine-tuning, and this is the paper's setting exactly (pretrained BERT pruned while it fine-tunes on
the GLUE task). The scores need the authors' budget: they prune from step 5,400 of about 55,000
(10 SQuAD epochs); ``minilm-sst2 medium`` fine-tunes 2,078 steps and prunes from step 208. Measured
there (``movement-during``, seed 0): the run ends at chance at 90 % (medium) and at 50 % (quick),
where GMP reaches 78.9 % (medium, 90 %) and 82.0 % (quick, 50 %), and a random 50 % mask fixed
before fine-tuning 79.4 % (quick). The scores are not at fault: they follow the movement (their
correlation with each weight's Δw · sign(w) is 0.97 from step 30 of ``quick``). What fails is what
the movement ranks after so few steps: every weight has moved about as far (Adam's steps: 3e-4 on
average), so the removal is blind to magnitude — at v = 0.88 the removed weights' mean |W| is 1.02–
1.06 × their layer's, and 12 % of each layer's largest 1 % are among them (magnitude pruning removes
none of those). After these first 12 %, pruned within 15 steps, the encoder's gradient falls from
1e-6 to below 1e-7 (mean |∂L/∂S|) and the weights stop moving; the rest of the schedule ranks frozen
scores. The same code with Top_v(|W|) in place of Top_v(S) reaches 81.2 % (quick, 50 %): the
parametrization, schedule and training are sound. The authors prune from step 5,400 over about
40,000 steps, by which time the scores separate the weights the task uses; they too find movement
behind magnitude at low sparsity (their Fig. 2). Fine-tuning a second time a model already
fine-tuned on the task (``movement`` on ``minilm-sst2``) ended at chance too. (Measured with a
plugin subclassing ``movement-during`` that logs these statistics every 10 steps, ``--plugins``.)

Here, deviations: the weights fine-tune with the task's recipe (optimizer, schedule replayed over
the fine-tuning, as ``lr-rewind`` retraining does) where the authors use AdamW at 3e-5; the
fine-tuning lasts ``finetune_fraction`` = 1 recipe training (the authors fine-tune BERT 10 epochs,
several times its dense fine-tuning: a CPU benchmark's budget); the scores are not clipped with
the recipe's gradient norm. Top_v keeps ``round(v n)`` weights (the harness's ``top_k_masks``;
the authors' ``int(v n)``: one weight more at most). Soft movement's λ depends on the model and the
target (the authors tune ``final_lambda`` per sparsity, 400 in their SQuAD command): ``final_lambda``
None takes it from ``LAMBDA_FOR_SPARSITY``, calibrated on LeNet-300-100 (see the table). Training
is counted at the dense rate (the masks live in the scores while they learn).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from sparsebench import Method, Uniform, register_method, top_k_masks
from sparsebench.library.calibration import from_table
from sparsebench.library.reparametrize import fold, reparametrize
from sparsebench.library.schedules import cubic_sparsity

INITS = ("constant", "uniform", "kaiming")
STARTS = ("trained", "initial")

# soft movement: (sparsity reached, λ), measured with the defaults on lenet300-mnist, profile quick (Adam
# 1.2e-3, 2 epochs dense + 2 fine-tuning), seed 0; a target between rows is interpolated, outside them clamped.
# The 0.5 % floor of each layer caps it near 0.995. Elsewhere the sparsity reached is only approximate.
LAMBDA_FOR_SPARSITY = ((0.171, 3.0), (0.346, 10.0), (0.627, 30.0), (0.782, 60.0), (0.868, 100.0), (0.919, 150.0),
                       (0.970, 300.0), (0.9946, 1000.0))


class Masked(nn.Module):
    """The parametrization W' = W ⊙ M, with M set by the method and ∂L/∂S = ∂L/∂W' ⊙ W (straight-through)."""

    def __init__(self, scores: torch.Tensor):
        super().__init__()
        self.scores = scores  # a plain tensor, not a module parameter: trained by the method's optimizer
        self.mask = torch.ones_like(scores)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * (self.mask + (self.scores - self.scores.detach()))  # the value M, the gradient of S


@register_method("movement")
@dataclass
class Movement(Method):
    finetune_fraction: float = 1.0  # fine-tuning steps, in trainings of the recipe (start="trained" only)
    begin: float = 0.1              # initial warm-up, as a fraction of fine-tuning
    end: float = 0.8                # the schedule's end; the rest is the final warm-up
    score_lr: float = 1e-2          # mask_scores_learning_rate (Adam)
    mask_init: str = "constant"     # constant | uniform | kaiming
    mask_scale: float = 0.0
    rule: str = "uniform"           # Top_v in each layer (the authors' default) | global
    start: str = "trained"          # trained: after the dense training | initial: during the task's training
    bounds = {"mask_init": INITS, "rule": ("uniform", "global"), "start": STARTS, "finetune_fraction": "(0, 10]", "begin": "[0, 1]", "end": "[0, 1]", "score_lr": "(0, inf)",
              "mask_scale": "[0, inf)"}

    # the score learning rate around the authors' 1e-2, and the schedule's end (Sanh et al. keep 2 of 10 epochs)
    search_space = {"score_lr": Uniform(1e-3, 1e-1, log=True), "end": Uniform(0.5, 0.9)}

    when = "after"
    criterion = "movement"
    paper = "Sanh, Wolf & Rush 2020, Movement Pruning: Adaptive Sparsity by Fine-Tuning (NeurIPS)"

    def __post_init__(self):
        if self.mask_init not in INITS:
            raise ValueError(f"unknown mask_init {self.mask_init!r}; choose one of {', '.join(INITS)}")
        if self.rule not in ("uniform", "global"):
            raise ValueError(f"unknown rule {self.rule!r}; choose uniform or global")
        if self.start not in STARTS:
            raise ValueError(f"unknown start {self.start!r}; choose trained or initial")

    def initial_scores(self, w: torch.Tensor) -> torch.Tensor:
        """``MaskedLinear.init_mask``."""
        s = torch.empty_like(w)
        if self.mask_init == "constant":
            return nn.init.constant_(s, self.mask_scale)
        if self.mask_init == "uniform":
            return nn.init.uniform_(s, -self.mask_scale, self.mask_scale)
        return nn.init.kaiming_uniform_(s, a=math.sqrt(5))

    def value(self, t: int, t0: int, t1: int, sparsity: float) -> float:
        """v, the fraction of weights kept at step t."""
        return cubic_sparsity(t, 1.0, 1.0 - sparsity, t0, t1 - t0, 1)

    def binarize(self, scores: dict[str, torch.Tensor], v: float) -> dict[str, torch.Tensor]:
        """Top_v(S)."""
        return top_k_masks(scores, v, self.rule)

    def penalize(self, scores: dict[str, torch.Tensor], t: int, t0: int, t1: int, sparsity: float) -> None:
        """Add a penalty's gradient to the scores' (none for hard movement)."""

    def run(self, ctx):
        if self.start == "trained":
            ctx.train()  # the shared dense training
            steps = max(1, round(self.finetune_fraction * ctx.total_steps))
        else:
            steps = ctx.total_steps  # the task's training, from its initial (pretrained) weights
        t0, t1 = round(self.begin * steps), max(round(self.begin * steps), round(self.end * steps))
        scores = {n: self.initial_scores(p.detach()).requires_grad_() for n, p in ctx.masks.params.items()}
        masked = reparametrize(ctx, lambda name, w: Masked(scores[name]))
        optimizer = torch.optim.Adam(scores.values(), lr=self.score_lr)

        @torch.no_grad()
        def set_masks(t):
            for name, m in self.binarize(scores, self.value(t, t0, t1, ctx.sparsity)).items():
                masked[name].mask = m.to(scores[name].dtype)

        def update_scores(i):
            self.penalize(scores, i, t0, t1, ctx.sparsity)
            warm = i / t0 if i < t0 else (steps - i) / max(1, steps - t0)  # get_linear_schedule_with_warmup
            for group in optimizer.param_groups:
                group["lr"] = self.score_lr * warm
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            set_masks(i + 1)  # M for the next forward pass

        set_masks(0)
        ctx.train(steps=steps, from_step=max(0, ctx.total_steps - steps), every=1, callback=update_scores)
        fold(ctx, masked, masks={n: m.mask.bool() for n, m in masked.items()})  # the last M, its zeros made real


def lambda_for(sparsity: float) -> float:
    """Soft movement's λ for a target: ``LAMBDA_FOR_SPARSITY``, log-linear in λ and in the density."""
    return from_table(LAMBDA_FOR_SPARSITY, sparsity)


@register_method("soft-movement")
@dataclass
class SoftMovement(Movement):
    final_threshold: float = 0.1        # τ on σ(S)
    final_lambda: float | None = None   # λ; None: from the target (LAMBDA_FOR_SPARSITY)
    lambda_scale: float = 1.0           # multiplies the table's λ
    bounds = {"final_threshold": "(0, 1)", "final_lambda": "[0, inf)", "lambda_scale": "(0, inf)"}

    # λ sets the sparsity; the authors tune it per target: within 10x of the table
    search_space = {"lambda_scale": Uniform(0.1, 10.0, log=True), "score_lr": Uniform(1e-3, 1e-1, log=True)}

    exact_sparsity = False

    def value(self, t, t0, t1, sparsity):
        """τ at step t."""
        return cubic_sparsity(t, 0.0, self.final_threshold, t0, t1 - t0, 1)

    def binarize(self, scores, tau):
        """[σ(S) > τ] in each layer, keeping at least 0.5 % of it (``ThresholdBinarizer``)."""
        out = {}
        for name, s in scores.items():
            mask = torch.sigmoid(s) > tau
            floor = int(0.005 * s.numel()) + 1
            out[name] = mask if mask.sum() >= floor else top_k_masks({name: s}, floor / s.numel())[name]
        return out

    def penalize(self, scores, t, t0, t1, sparsity):
        """∂/∂S of λ_t · mean over layers of ‖σ(S)‖₁ / n, λ_t = λ τ_t / τ (``regularization``)."""
        lam = self.final_lambda if self.final_lambda is not None else self.lambda_scale * lambda_for(sparsity)
        lam_t = lam * self.value(t, t0, t1, sparsity) / self.final_threshold
        with torch.no_grad():
            for s in scores.values():
                sig = torch.sigmoid(s)
                if s.grad is None:
                    s.grad = torch.zeros_like(s)
                s.grad.add_(sig * (1 - sig), alpha=lam_t / (len(scores) * s.numel()))


@register_method("movement-during", start="initial")
@dataclass
class MovementDuring(Movement):
    """Movement pruning during the task's training (on a pretrained task: the paper's setting)."""
    when = "during"


@register_method("soft-movement-during", start="initial")
@dataclass
class SoftMovementDuring(SoftMovement):
    """Soft movement pruning during the task's training (on a pretrained task: the paper's setting)."""
    when = "during"
