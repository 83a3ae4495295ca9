"""Running and tracking: one trial, sweeps through Ray Tune, MLflow runs, the runs bundle, suites."""
