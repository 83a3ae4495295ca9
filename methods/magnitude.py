"""One-shot magnitude pruning after training, then fine-tuning.

Han et al. 2015, "Learning both Weights and Connections for Efficient Neural Networks"
(NeurIPS): train the dense network, remove the weights of smallest magnitude, fine-tune the
rest. ``global`` ranks all prunable weights together (as compared by Blalock et al. 2020);
``layerwise`` prunes every layer to the same sparsity, as Han et al. did. The fine-tuning
budget is a fraction of the recipe's training, with the recipe's schedule rescaled to it.
"""
from dataclasses import dataclass

from sparsebench import Method, magnitude_scores, register_method


@register_method("magnitude", rule="global")
@register_method("magnitude-layerwise", rule="uniform")
@dataclass
class Magnitude(Method):
    rule: str = "global"          # global | uniform
    finetune_fraction: float = 0.5  # fine-tuning steps, as a fraction of one training
    finetune_lr_scale: float = 0.1  # fine-tune at a tenth of the recipe's learning rate

    when = "after"
    criterion = "magnitude"
    paper = "Han et al. 2015, Learning both Weights and Connections for Efficient Neural Networks (NeurIPS)"

    def run(self, ctx):
        ctx.train()
        ctx.masks.prune(magnitude_scores(ctx.masks), ctx.sparsity, rule=self.rule)
        ctx.train(steps=max(1, round(self.finetune_fraction * ctx.total_steps)), lr_scale=self.finetune_lr_scale)
