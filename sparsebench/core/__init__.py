"""Contracts and the training loop: masks, FLOPs, the method and task plugin contracts, registries."""
