"""Finite-sample confidence bounds on a mean, the statistics under the cascade's guarantee.

A Bernoulli rate (a label answer wrong, a text routed) gets the exact Clopper-Pearson bound; a
mean of losses in [0, 1] (one minus a text's word F1) gets the empirical-Bernstein bound of
Maurer and Pontil (2009), which is tight when most losses are 0. Both hold at every sample size
for independent draws, with no normal approximation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _beta_ppf(q: float, a: float, b: float) -> float:
    """The beta quantile; scipy.stats is imported here, not at import time (it costs seconds,
    and every `execute` imports this module through the run plan, cascade or not)."""
    from scipy.stats import beta

    return float(beta.ppf(q, a, b))


def binomial_upper(errors: int, n: int, delta: float) -> float:
    """One-sided upper (1 - delta) Clopper-Pearson bound on a rate seen as `errors` of `n`."""
    if n <= 0 or errors >= n:
        return 1.0
    return _beta_ppf(1.0 - delta, errors + 1, n - errors)


def binomial_lower(successes: int, n: int, delta: float) -> float:
    """One-sided lower (1 - delta) Clopper-Pearson bound on a rate seen as `successes` of `n`."""
    if n <= 0 or successes <= 0:
        return 0.0
    return _beta_ppf(delta, successes, n - successes + 1)


def binomial_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval, for reporting an audit's agreement."""
    tail = (1.0 - level) / 2
    return binomial_lower(successes, n, tail), 1.0 - binomial_lower(n - successes, n, tail)


def bernstein_upper(losses: Sequence[float], delta: float) -> float:
    """One-sided upper (1 - delta) empirical-Bernstein bound on the mean of losses in [0, 1]."""
    n = len(losses)
    if n < 2:
        return 1.0
    mean = sum(losses) / n
    variance = sum((x - mean) ** 2 for x in losses) / (n - 1)
    log_term = math.log(2.0 / delta)
    return min(1.0, mean + math.sqrt(2.0 * variance * log_term / n) + 7.0 * log_term / (3.0 * (n - 1)))


__all__ = ["bernstein_upper", "binomial_interval", "binomial_lower", "binomial_upper"]
