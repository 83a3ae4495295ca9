"""Named suites: the grids that ``sparsebench run --suite NAME`` and ``make bench`` run."""

SPARSITIES = [0.5, 0.8, 0.9, 0.95, 0.98]

SUITES = {
    # the default benchmark: fits in 30 minutes on 2 CPU cores
    "default": {
        "tasks": ["lenet300-mnist"],
        "methods": ["dense", "random", "random-erk", "magnitude", "magnitude-layerwise"],
        "sparsities": SPARSITIES,
        "seeds": [0, 1, 2],
        "profile": "quick",
    },
    # the reference recipes: GPU work for most tasks
    "full": {
        "tasks": ["lenet300-mnist"],
        "methods": ["dense", "random", "random-erk", "magnitude", "magnitude-layerwise"],
        "sparsities": [0.5, 0.8, 0.9, 0.95, 0.98, 0.99],
        "seeds": [0, 1, 2],
        "profile": "full",
    },
}
