"""Checks of what a trial is given: the target sparsity, and a method's fields (their types and
declared bounds) as a schema.

A method declares its fields' bounds in a class attribute ``bounds``: an interval for a number
(``{"delta_t": "[1, inf)"}``), or the tuple of the values a string field takes
(``{"rule": ("uniform", "global")}``). The schema is plain data (``{"delta_t": {"kinds": ["int"],
"bounds": "[1, inf)"}}``; a choice's bounds are a list), so that the plugin catalog can keep it and
``--set`` values are checked before any plugin is imported.
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing

INTERVAL = re.compile(r"^\s*([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])\s*$")
KINDS = {"int": int, "float": float, "str": str, "bool": bool, "None": type(None)}
KIND_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def in_interval(value: float, interval: str) -> bool:
    """Whether ``value`` lies in ``interval``, written "[low, high)" with ``inf`` for no bound."""
    match = INTERVAL.match(interval)
    if not match:
        raise ValueError(f"bad interval {interval!r}: write e.g. '(0, 1]' or '[1, inf)'")
    opening, low, high, closing = match.groups()
    low, high = float(low), float(high)
    return ((low < value if opening == "(" else low <= value)
            and (value < high if closing == ")" else value <= high))


def check_sparsity(sparsity: float) -> float:
    """A target sparsity as a float; raises ``ValueError`` if it is outside [0, 1)."""
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}") from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {value}")
    return value


def schema(cls: type) -> dict[str, dict]:
    """Field name -> {"kinds": the plain types it takes (others: unchecked), "bounds": interval, list of
    choices, or None} of the method dataclass ``cls``; bounds are merged from ``cls`` and its bases."""
    hints = typing.get_type_hints(cls)
    bounds = {k: v for klass in reversed(cls.__mro__) for k, v in vars(klass).get("bounds", {}).items()}
    out = {}
    for field in dataclasses.fields(cls):
        kinds = typing.get_args(hints[field.name]) or (hints[field.name],)
        bound = bounds.get(field.name)
        out[field.name] = {"kinds": [n for n, k in KINDS.items() if k in kinds],
                           "bounds": list(bound) if isinstance(bound, (tuple, list, set, frozenset)) else bound}
    return out


def check_hparams(name: str, fields: dict[str, dict], values: dict) -> dict:
    """``values`` (name -> value) checked against the :func:`schema` ``fields`` of method ``name``:
    known names, the field's type (an int is a float; JSON gives no other conversion) and its
    bounds. Returns them with ints given for float fields as floats; raises ``ValueError`` naming
    what is wrong."""
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"method {name!r} has no hyperparameter {', '.join(unknown)}; "
                         f"it has: {', '.join(sorted(fields)) or 'none'}")
    checked = {}
    for key, value in values.items():
        kinds, bounds = fields[key]["kinds"], fields[key]["bounds"]
        if value is None and "None" in kinds:
            checked[key] = value
            continue
        if "float" in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        plain = [k for k in kinds if k in KIND_NAMES]
        if plain and not any(type(value) is KINDS[k] for k in plain) or isinstance(value, float) and math.isnan(value):
            raise ValueError(f"method {name!r}: {key} must be {' or '.join(KIND_NAMES[k] for k in plain)}, "
                             f"got {value!r}")
        if isinstance(bounds, list):
            if value not in bounds:
                raise ValueError(f"method {name!r}: {key} must be one of {', '.join(map(repr, bounds))}, got {value!r}")
        elif bounds and not in_interval(value, bounds):
            raise ValueError(f"method {name!r}: {key} must be in {bounds}, got {value!r}")
        checked[key] = value
    return checked
