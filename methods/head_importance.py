"""Attention-head pruning by head importance, after training.

Michel, Levy & Neubig 2019, "Are Sixteen Heads Really Better than One?" (NeurIPS); code:
github.com/pmichel31415/are-16-heads-really-better-than-1 (``heads_importance.py``). Algorithm
(their §4, §6.1): a gate ξ_h multiplies each head's output; its importance is
I_h = E_x |∂L/∂ξ_h| = E_x |Σ_t Att_h(x)ᵀ ∂L/∂Att_h(x)|, the expected absolute sensitivity of the loss
to masking the head, normalized by the ℓ2 norm over the heads of each layer; heads are removed in
steps of 10 % of all heads, the least important first across layers, importance recomputed after
each step, until the target fraction of heads is gone. No retraining (the paper prunes a trained
model as it is); ``head-importance-retrain`` retrains as ``magnitude`` does.

Here: the gate's gradient is read on the input of each attention module's output projection
(the concatenated heads, head h's columns) by a tensor hook, on 512 training examples per step
(the paper: its validation or training set), charged as forward and backward passes; the per-
example sum is taken over the example's tokens. A head is removed by masking its rows of q, k and v
and its columns of the output projection (:func:`sparsebench.library.structures.head_groups`);
``sparsity`` is the fraction of all heads removed, at least one kept per layer. Only models with
``SelfAttention`` modules whose four matrices are prunable have heads: others make the method
raise, a failed trial with that reason. Heads are not compacted yet (the attention reshapes by
its width), so their measured speedup is that of the masked or CSR form.
"""
from dataclasses import dataclass

import torch

from sparsebench import register_method
from sparsebench.library.posttraining import PruneAfterTraining
from sparsebench.library.structures import head_groups


@register_method("head-importance", retrain="none")
@register_method("head-importance-retrain", retrain="lr-rewind")
@dataclass
class HeadImportance(PruneAfterTraining):
    step_fraction: float = 0.1      # of all heads removed per step (the paper's 10 %)
    calibration_examples: int = 512  # training examples the importance is estimated on, per step
    bounds = {"step_fraction": "(0, 1]", "calibration_examples": "[1, inf)"}

    criterion = "gradient"
    structure = "heads"
    exact_sparsity = False  # the target is a fraction of heads; the weights' sparsity follows from it
    paper = "Michel et al. 2019, Are Sixteen Heads Really Better than One? (NeurIPS)"
    untuned = "the step and the estimate's size are the paper's; no retraining"

    def run(self, ctx):
        ctx.train()
        groups = head_groups(ctx.model, list(ctx.masks))
        if not groups:
            raise ValueError("this model has no attention heads whose q, k, v and output matrices are all prunable")
        removed = [torch.zeros(g.units, dtype=torch.bool) for g in groups]
        total = sum(g.units for g in groups)
        target = min(round(ctx.sparsity * total), total - len(groups))
        while (done := sum(int(r.sum()) for r in removed)) < target:
            scores = self.importance(ctx, groups)
            ranked = sorted((float(s[h]), k, h) for k, s in enumerate(scores) for h in range(len(s)) if not removed[k][h])
            quota = min(max(1, round(self.step_fraction * total)), target - done)
            for _, k, h in ranked:
                if quota and int((~removed[k]).sum()) > 1:  # one head of each layer stays
                    removed[k][h], quota = True, quota - 1
            masks = {n: m.clone() for n, m in ctx.masks.masks.items()}
            for g, r in zip(groups, removed):
                masks.update(g.masks(r, masks))
            ctx.masks.set(masks)
        self.retrain_pruned(ctx)

    def importance(self, ctx, groups) -> list[torch.Tensor]:
        """I_h per group, normalized by its ℓ2 norm over the group's heads."""
        sums = [torch.zeros(g.units, dtype=torch.float64) for g in groups]
        modules = [ctx.model.get_submodule(g.members[3][0].rpartition(".")[0]) for g in groups]  # out_proj

        def hook(k):
            def capture(module, args):
                x = args[0]

                def gate_gradient(grad):  # returns None: the gradient flows on unchanged
                    sums[k].add_(per_head(x.detach() * grad, groups[k].units))

                if x.requires_grad:
                    x.register_hook(gate_gradient)
            return capture

        handles = [m.register_forward_pre_hook(hook(k)) for k, m in enumerate(modules)]
        try:
            for batch in ctx.batches(max(1, -(-self.calibration_examples // ctx.batch_size))):
                ctx.model.zero_grad(set_to_none=True)
                ctx.loss(batch).backward()
        finally:
            for h in handles:
                h.remove()
            ctx.model.zero_grad(set_to_none=True)
        return [s / s.norm().clamp_min(1e-12) for s in sums]


def per_head(contribution: torch.Tensor, heads: int) -> torch.Tensor:
    """Σ over each example's tokens and head channels of x·∂L/∂x, then |·| summed over examples."""
    b = contribution.shape[0]
    return contribution.reshape(b, -1, heads, contribution.shape[-1] // heads).sum((1, 3)).abs().sum(0).double()
