"""Benchmark: a ``minilm-sst2`` trial's fine-tuning against a bare Hugging Face loop, side by side.

In one process, rounds alternate (1) a whole sparsebench trial of ``minilm-sst2`` (a method,
default ``dense``; its masks held every step, validation each epoch, counting, final validation and
test, measured inference) and (2) a bare Hugging Face fine-tuning loop as a user would write it:
``AutoModelForSequenceClassification`` on the same verified all-MiniLM-L6-v2 files, the same token
ids, batch size, number of steps and torch threads, AdamW (fused) at the recipe's rate with the
usual no-decay rule for biases and LayerNorms, ``get_linear_schedule_with_warmup`` over the
recipe's warm-up, bfloat16 autocast, each batch cut to its longest sentence with an attention
mask; then one evaluation on SST-2 dev. Printed: the ratio of the training alone (the trial's
method time less its per-epoch validations, against the bare loop's training), of the whole
wall times, both dev accuracies, and the trial's measured inference cost (dense, CSR and compacted
forms at batch 1 and at the evaluation batch: ``sparsebench.core.inference``).

    python -m sparsebench.benchmarks.finetune_speed --profile quick --method dense magnitude-oneshot --sparsity 0.5
"""
from __future__ import annotations

import argparse
import time

import torch

from sparsebench.core import registry
from sparsebench.data import data_root
from sparsebench.running.trial import TrialSpec, make_task, run_trial


def bare_hf_loop(task, train, test, steps: int, seed: int) -> dict:
    """The reference loop (see the module docstring): its training seconds and dev accuracy."""
    import transformers

    from sparsebench.data.pretrained import MINILM_L6, pretrained_dir

    recipe = task.recipe
    torch.manual_seed(seed)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(pretrained_dir(MINILM_L6), num_labels=2)
    decay = [p for n, p in model.named_parameters() if not n.endswith("bias") and "LayerNorm" not in n]
    rest = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=recipe.lr, fused=True)
    schedule = transformers.get_linear_schedule_with_warmup(opt, round(recipe.warmup * steps), steps)
    g = torch.Generator().manual_seed(seed)
    began, done = time.perf_counter(), 0
    model.train()
    while done < steps:
        for x, y in train.batches(recipe.batch_size, shuffle=True, generator=g):
            if done == steps:
                break
            x = x[:, :int((x != 0).sum(1).max())]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(input_ids=x, attention_mask=(x != 0).long(), labels=y).loss
            loss.backward()
            opt.step()
            schedule.step()
            opt.zero_grad(set_to_none=True)
            done += 1
    trained = time.perf_counter() - began
    model.eval()
    right = 0
    with torch.no_grad():
        for x, y in test.batches(recipe.eval_batch_size):
            x = x[:, :int((x != 0).sum(1).max())]
            right += (model(input_ids=x, attention_mask=(x != 0).long()).logits.argmax(-1) == y).sum().item()
    return {"train_s": trained, "wall_s": time.perf_counter() - began, "accuracy": 100.0 * right / len(test)}


def compare(profile: str, method: str, sparsity: float, rounds: int) -> None:
    spec = TrialSpec("minilm-sst2", method, sparsity if method != "dense" else 0.0, seed=0, profile=profile)
    task = make_task(spec.task, spec.profile)
    splits = task.load(data_root())  # tokenized and cached outside the timings
    train = splits.train.subset(task.recipe.train_subset)
    for i in range(rounds):
        began = time.perf_counter()
        result = run_trial(spec, data_root())
        trial_wall = time.perf_counter() - began
        m = result["metrics"]
        steps = int(m["cost/train_steps"])
        bare = bare_hf_loop(task, train, splits.test, steps, seed=i)
        training = m["time/method_seconds"] - m["time/validation_seconds"]
        print(f"minilm-sst2 {profile} {spec.run_name} round {i + 1}: {steps} steps; training {training:.1f} s against the "
              f"bare Hugging Face loop's {bare['train_s']:.1f} s: speed ratio (bare / trial) "
              f"{bare['train_s'] / training:.3f}; whole trial {trial_wall:.1f} s against {bare['wall_s']:.1f} s; "
              f"dev accuracy {m.get('final/test_accuracy', float('nan')):.2f} (trial, {result['status']}) / "
              f"{bare['accuracy']:.2f} (bare); {steps * task.recipe.batch_size / training:.1f} sentences/s (trial)",
              flush=True)
        inference = {k: v for k, v in m.items() if k.startswith("inference/")}
        print("  measured inference: " + ", ".join(f"{k[10:]} {v:.4g}" if isinstance(v, float) else f"{k[10:]} {v}"
                                                     for k, v in sorted(inference.items())), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--method", nargs="+", default=["dense"])
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    registry.discover()
    for method in args.method:
        compare(args.profile, method, args.sparsity, args.rounds)


if __name__ == "__main__":
    main()
