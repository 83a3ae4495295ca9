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
- ``retrain="none"`` (``magnitude-oneshot``, ``magnitude-oneshot-layerwise``): no retraining, the
  reference row of post-training pruning (:mod:`sparsebench.library.posttraining`).

Version 1 fine-tuned for half a training at a tenth of the recipe's learning rate with the
schedule rescaled, a choice no paper made; it handicapped the baseline (LeNet-300-100 at 98 %,
profile ``quick``: 77.5 % where retraining at the recipe's rate reaches 95.5 %).
"""
from dataclasses import dataclass

from sparsebench import magnitude_scores, register_method
from sparsebench.library.posttraining import PruneAfterTraining


@register_method("magnitude", rule="global")
@register_method("magnitude-layerwise", rule="uniform")
@register_method("magnitude-finetune", rule="global", retrain="finetune")
@register_method("magnitude-oneshot", rule="global", retrain="none")
@register_method("magnitude-oneshot-layerwise", rule="uniform", retrain="none")
@dataclass
class Magnitude(PruneAfterTraining):
    version = "2"
    criterion = "magnitude"
    paper = "Han et al. 2015, Learning both Weights and Connections for Efficient Neural Networks (NeurIPS)"
    untuned = "without retraining, one-shot magnitude pruning has no hyperparameter"

    def score(self, ctx):
        return magnitude_scores(ctx.masks)
