"""The racing rule: a candidate answers a growing, fixed set of questions (the rungs) and
is dropped as soon as its accuracy cannot reach the bar.

After each rung the candidate's accuracy gets its 95% Wilson interval. An upper bound below
the threshold means that even the interval's best case misses the bar: the candidate is
dropped (Optuna's pruner interface, so the trial is stored as pruned). Otherwise it goes on
to the next rung. After the last rung it has cleared the bar if the interval's lower bound
is at or above the threshold, and is short of it otherwise.
"""
from __future__ import annotations

import optuna

from ..evaluate.stats import wilson_interval

DROPPED, PROMOTED, CLEARED, SHORT = "dropped", "promoted", "cleared", "short of bar"


def rung_decision(correct: int, n: int, threshold: float, last: bool) -> str:
    """What happens to a candidate with `correct` of `n` right at a rung."""
    low, high = wilson_interval(correct, n)
    if high < threshold:
        return DROPPED
    if not last:
        return PROMOTED
    return CLEARED if low >= threshold else SHORT


class WilsonPruner(optuna.pruners.BasePruner):
    """Prunes a trial whose last reported accuracy (value) on `step` questions has a Wilson
    upper bound below the threshold."""

    def __init__(self, threshold: float):
        self.threshold = threshold

    def prune(self, study, trial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        accuracy = trial.intermediate_values[step]
        correct = round(accuracy * step)
        return wilson_interval(correct, step)[1] < self.threshold
