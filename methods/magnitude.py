"""One-shot magnitude pruning after training, then retraining.

Han et al. 2015, "Learning both Weights and Connections for Efficient Neural Networks"
(NeurIPS): train the dense network, remove the weights of smallest magnitude, retrain the rest.
``global`` ranks all prunable weights together (as compared by Blalock et al. 2020, and as
Renda et al. 2020 prune); ``layerwise`` prunes every layer to the same sparsity, as Han et al. did.
Global ranking can empty a small layer at high sparsity (e.g. LeNet-300-100's output layer at
98 %): the harness reports that as layer collapse on the leaderboard rather than the method
hiding it.

Retraining, after Renda, Frankle & Carbin 2020, "Comparing Rewinding and Fine-tuning in Neural
Network Pruning" (ICLR), §2–3, who compare the two ways to retrain a pruned network for t steps
(their code: github.com/lottery-ticket/rewinding-iclr20-public, ``fine_tune`` vs ``lr_rewind``
retraining modes):

- ``retrain="lr-rewind"`` (the default; ``magnitude``, ``magnitude-layerwise``): learning-rate
  rewinding — retrain from the final weights with the last t steps of the recipe's learning-rate
  schedule. With t = one full training (``retrain_fraction=1``, the default) this replays the
  whole schedule, which is also Han et al.'s retraining with the training schedule. Renda et al.
  find it matches or beats fine-tuning at every retraining budget, hence the default.
- ``retrain="finetune"`` (``magnitude-finetune``): fine-tuning — retrain for t steps at the
  recipe's final learning rate, held constant (Renda et al.'s fine-tuning baseline, the common
  practice after Han et al.).

Version 1 fine-tuned for half a training at a tenth of the recipe's learning rate with the
schedule rescaled, a choice no paper made; it handicapped the baseline (LeNet-300-100 at 98 %,
profile ``quick``: 77.5 % where retraining at the recipe's rate reaches 95.5 %).
"""
from dataclasses import dataclass

from sparsebench import Method, Uniform, magnitude_scores, register_method

RETRAIN = ("lr-rewind", "finetune")


@register_method("magnitude", rule="global")
@register_method("magnitude-layerwise", rule="uniform")
@register_method("magnitude-finetune", rule="global", retrain="finetune")
@dataclass
class Magnitude(Method):
    rule: str = "global"            # global | uniform
    retrain: str = "lr-rewind"      # lr-rewind | finetune (Renda et al. 2020)
    retrain_fraction: float = 1.0   # t, retraining steps as a fraction of one training
    lr_scale: float = 1.0           # the retraining's learning rate relative to the rule's (1: as published)

    # Renda et al. 2020 (Fig. 4-6) vary the retraining length t; the rate scale is the practitioner's
    # other knob for fine-tuning (Han et al. 2015 retrain at the recipe's rate, Renda et al. at its final one)
    search_space = {"retrain_fraction": Uniform(0.25, 1.0), "lr_scale": Uniform(0.1, 3.0, log=True)}

    version = "2"
    when = "after"
    criterion = "magnitude"
    paper = "Han et al. 2015, Learning both Weights and Connections for Efficient Neural Networks (NeurIPS)"

    def __post_init__(self):
        if self.retrain not in RETRAIN:
            raise ValueError(f"unknown retrain {self.retrain!r}; choose one of {', '.join(RETRAIN)}")
        if not 0.0 < self.retrain_fraction <= 10.0:
            raise ValueError(f"retrain_fraction must be in (0, 10], got {self.retrain_fraction}")
        if not self.lr_scale > 0:
            raise ValueError(f"lr_scale must be positive, got {self.lr_scale}")

    def run(self, ctx):
        ctx.train()
        ctx.masks.prune(magnitude_scores(ctx.masks), ctx.sparsity, rule=self.rule)
        t = max(1, round(self.retrain_fraction * ctx.total_steps))
        if self.retrain == "lr-rewind":
            ctx.train(steps=t, from_step=max(0, ctx.total_steps - t), lr_scale=self.lr_scale)  # the schedule's last t steps
        else:
            ctx.train(steps=t, lr_scale=ctx.final_lr_factor * self.lr_scale, lr_schedule=False)
