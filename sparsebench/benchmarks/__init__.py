"""Benchmarks of the harness itself (``python -m sparsebench.benchmarks.<name>``)."""
