"""Interval estimates against hand computations: the IQM, the probability of improvement, and their
stratified bootstrap intervals against a plain resampling loop written out here."""

import numpy as np
import pytest

from zobench.report.statistics import Estimate, band, iqm_interval, probability_of_improvement


def hand_interval(strata, statistic, resamples=20000, seed=123):
    """Resamples each stratum with replacement, separately; the 2.5th and 97.5th percentiles."""
    rng = np.random.default_rng(seed)
    values = [statistic([rng.choice(s, size=len(s), replace=True) for s in strata]) for _ in range(resamples)]
    return np.percentile(values, [2.5, 97.5])


def hand_iqm(values):
    ordered = sorted(values)
    quarter = len(ordered) // 4
    return float(np.mean(ordered[quarter:len(ordered) - quarter]))


def test_iqm_is_the_mean_of_the_middle_half_and_its_interval_resamples_within_problems():
    strata = [[0.1, 0.4, 0.35, 0.9, 0.2, 0.3, 0.5, 0.45], [0.6, 0.7, 0.65, 0.8]]
    estimate = iqm_interval(strata)
    assert estimate.value == pytest.approx(hand_iqm(strata[0] + strata[1]))
    low, high = hand_interval(strata, lambda s: hand_iqm(np.concatenate(s)))
    assert estimate.low == pytest.approx(low, abs=0.02) and estimate.high == pytest.approx(high, abs=0.02)
    assert estimate.low < estimate.value < estimate.high
    pooled = iqm_interval([strata[0] + strata[1]])  # one stratum: resamples may drop a problem entirely
    assert pooled.high - pooled.low > estimate.high - estimate.low


def test_missing_and_single_values():
    assert iqm_interval([[None, float("nan")]]) is None
    single = iqm_interval([[0.5, None]])
    assert single.value == 0.5 and single.low is None and single.text() == "0.5"
    agreeing = iqm_interval([[2.0, 2.0, 2.0]])
    assert (agreeing.low, agreeing.high, agreeing.text()) == (2.0, 2.0, "2")
    assert Estimate(0.25, 0.125, 0.5).text(number=".2f") == "0.25 [0.12, 0.50]"
    assert Estimate(0.7, 0.7, 0.7).text(number=".2f") == "0.70"


def test_probability_of_improvement_counts_pairs_and_ties_per_problem():
    x1, y1 = [3.0, 5.0, 7.0], [4.0, 5.0, 1.0]
    x2, y2 = [0.1, 0.2], [0.3, 0.4]
    # problem 1: of 9 pairs x wins 6 (3>1; 5>4, 5>1; 7>4, 7>5, 7>1) and ties 1 (5=5); problem 2: x never wins
    first = (sum(a > b for a in x1 for b in y1) + 0.5 * sum(a == b for a in x1 for b in y1)) / 9
    assert first == pytest.approx(6.5 / 9)
    estimate = probability_of_improvement([(x1, y1), (x2, y2)])
    assert estimate.value == pytest.approx((first + 0.0) / 2)

    def statistic(s):
        return np.mean([np.mean((s[i][:, None] > s[i + 1][None, :]) + 0.5 * (s[i][:, None] == s[i + 1][None, :]))
                        for i in (0, 2)])
    low, high = hand_interval([np.array(v) for v in (x1, y1, x2, y2)], statistic)
    assert estimate.low == pytest.approx(low, abs=0.03) and estimate.high == pytest.approx(high, abs=0.03)
    lower_better = probability_of_improvement([(x1, y1), (x2, y2)], higher_is_better=False)
    assert lower_better.value == pytest.approx(1 - estimate.value)


def test_band_follows_the_seeds_that_remain():
    runs = np.array([[1.0, 2.0, 3.0], [1.0, 4.0, np.nan], [1.0, 6.0, np.nan]])
    centre, low, high = band(runs)
    assert list(centre) == [1.0, 4.0, 3.0] and low[0] == high[0] == 1.0 and low[2] == high[2] == 3.0
    assert 2.0 <= low[1] < 4.0 < high[1] <= 6.0
