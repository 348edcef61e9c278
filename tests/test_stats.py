"""95% intervals and paired tests, against values computed by hand."""
import math
from types import SimpleNamespace

import pytest

from nanovlm_lite.evaluate.merge import add_accuracy_interval, compute_metrics
from nanovlm_lite.evaluate.stats import (bootstrap_interval, mcnemar_exact, paired_difference,
                                         wilson_interval)

Z = 1.959963984540054  # the 97.5% normal quantile


def test_wilson_seven_of_ten():
    low, high = wilson_interval(7, 10)
    # by hand: centre (0.7 + z^2/20) / (1 + z^2/10) = 0.64449,
    # half-width z sqrt(0.021 + z^2/400) / (1 + z^2/10) = 0.24771
    assert low == pytest.approx(0.39677, abs=5e-5) and high == pytest.approx(0.89222, abs=5e-5)
    assert round(low, 3) == 0.397 and round(high, 3) == 0.892


def test_wilson_at_zero_and_all():
    # 0 of n: [0, z^2 / (n + z^2)]; n of n: [n / (n + z^2), 1]
    assert wilson_interval(0, 10) == (0.0, pytest.approx(Z * Z / (10 + Z * Z)))
    assert wilson_interval(10, 10) == (pytest.approx(10 / (10 + Z * Z)), 1.0)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.27753, abs=5e-5)
    assert wilson_interval(1145, 1145)[0] == pytest.approx(0.99665, abs=5e-5)


def test_wilson_width_near_the_studys_bar():
    """The issue's example: about +-2.8 points at 65% of 1,145 questions."""
    low, high = wilson_interval(744, 1145)
    assert (high - low) / 2 == pytest.approx(0.0276, abs=5e-4)


def test_wilson_without_questions_and_bad_counts():
    assert wilson_interval(0, 0) == (None, None)
    with pytest.raises(ValueError, match="11 successes out of 10"):
        wilson_interval(11, 10)


def test_mcnemar_exact_on_constructed_tables():
    # 1 vs 6 discordant: n = 7, P(X <= 1) = (1 + 7) / 128, two-sided 16/128
    assert mcnemar_exact(1, 6) == pytest.approx(0.125)
    assert mcnemar_exact(6, 1) == pytest.approx(0.125)
    # 2 vs 8: (1 + 10 + 45) / 1024 twice
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_paired_difference_counts_only_discordant_questions():
    # 20 questions: both right on 10, both wrong on 2, only a right on 7, only b right on 1
    a = [1] * 10 + [0] * 2 + [1] * 7 + [0] * 1
    b = [1] * 10 + [0] * 2 + [0] * 7 + [1] * 1
    out = paired_difference(a, b)
    assert out["only_a"] == 7 and out["only_b"] == 1 and out["n"] == 20
    assert out["difference"] == pytest.approx((17 - 11) / 20)
    assert out["p_value"] == pytest.approx(2 * (1 + 8) / 256)
    assert out["low"] < out["difference"] < out["high"]
    assert -1 <= out["low"] and out["high"] <= 1
    # the interval of a - b is the mirror image of b - a (the same resamples)
    back = paired_difference(b, a)
    assert back["low"] == pytest.approx(-out["high"]) and back["high"] == pytest.approx(-out["low"])


def test_paired_difference_of_identical_answers_is_exactly_zero():
    out = paired_difference([1, 0, 1, 1], [1, 0, 1, 1])
    assert (out["difference"], out["low"], out["high"], out["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        paired_difference([1, 0], [1])


def test_bootstrap_reproduces_itself_with_a_fixed_seed_and_not_with_another():
    scores = [min(1.0, m / 3) for m in [0, 1, 2, 3, 3, 3, 0, 1, 3, 2, 3, 0, 3, 3, 1, 2, 3, 3]]
    first = bootstrap_interval(scores, seed=0)
    assert bootstrap_interval(scores, seed=0) == first
    # the mean of scores in thirds takes few values, so with 10,000 resamples two seeds
    # often land on the same quantiles; with 200 the seed shows
    few = [bootstrap_interval(scores * 5, n_boot=200, seed=s) for s in (0, 1)]
    assert few[0] != few[1] and bootstrap_interval(scores * 5, n_boot=200, seed=0) == few[0]
    other = bootstrap_interval(scores, seed=1)
    mean = sum(scores) / len(scores)
    for low, high in (first, other):
        assert low < mean < high
        assert abs((high - low) / 2 - 1.96 * _sd(scores) / math.sqrt(len(scores))) < 0.03
    assert bootstrap_interval([]) == (None, None)
    assert bootstrap_interval([1.0] * 5) == (1.0, 1.0)


def _sd(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def test_metrics_carry_intervals_overall_per_type_and_direct_answer():
    records = ([{"question_id": f"c{i}", "correct": i < 7, "question_type": "color",
                 "direct_answer": "red"} for i in range(10)]
               + [{"question_id": f"y{i}", "correct": i < 3, "question_type": "yes/no",
                   "direct_answer": "no"} for i in range(4)]
               + [{"question_id": "e0", "error": "corrupt image", "correct": False,
                    "question_type": "yes/no",
                   "direct_answer": ""}])
    questions = {r["question_id"]: SimpleNamespace(
        direct_answers=["red"] * 3 if r["question_id"].startswith("c") else ["yes"] * 10,
        difficult_direct_answer=False) for r in records}
    m = compute_metrics(records, questions)
    assert m["n_correct"] == 10 and m["n_questions"] == 15  # the error counts as wrong
    assert (m["accuracy_low"], m["accuracy_high"]) == pytest.approx(wilson_interval(10, 15))
    assert m["accuracy_by_type_low"]["color"] == pytest.approx(0.39677, abs=5e-5)
    assert m["accuracy_by_type_high"]["color"] == pytest.approx(0.89222, abs=5e-5)
    assert m["accuracy_by_type_low"]["yes/no"] == pytest.approx(wilson_interval(3, 5)[0])
    # direct answers: 10 scores of 1, 5 of 0 -> mean 2/3 inside its bootstrap interval
    assert m["direct_answer_accuracy"] == pytest.approx(10 / 15)
    assert m["direct_answer_accuracy_low"] < 10 / 15 < m["direct_answer_accuracy_high"]
    assert m["interval"]["level"] == 0.95 and m["interval"]["seed"] == 0


def test_no_accuracy_means_no_interval():
    """Data without answers: accuracy None (not 0.0), and so are its bounds."""
    m = {"accuracy": None, "n_correct": 0, "n_questions": 40}
    add_accuracy_interval(m)
    assert m["accuracy_low"] is None and m["accuracy_high"] is None
    empty = compute_metrics([])
    assert empty["accuracy_low"] is None and empty["accuracy_high"] is None
