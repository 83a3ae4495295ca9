"""The library methods share: saliency scores, pruning schedules, connectivity."""
