"""Sparsity schedules that methods share."""


def cubic_sparsity(t: int, s_i: float, s_f: float, t0: int, n: int, dt: int) -> float:
    """Zhu & Gupta 2018's s_t: s_i until t0, s_f from t0 + n Δt on, the cubic in between."""
    if t <= t0:
        return s_i
    if t >= t0 + n * dt:
        return s_f
    return s_f + (s_i - s_f) * (1.0 - (t - t0) / (n * dt)) ** 3
