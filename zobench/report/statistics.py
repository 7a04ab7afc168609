"""Interval estimates across seeds and problems: the interquartile mean (IQM) and the probability of
improvement, each with a stratified bootstrap 95% confidence interval (Agarwal et al., "Deep RL at the
Edge of the Statistical Precipice", NeurIPS 2021).

A stratum is one problem's runs (its seeds). The bootstrap resamples seeds within each stratum,
never across, so every resample keeps every problem. ``scipy.stats.bootstrap`` does exactly this when
given one sample per stratum (it resamples each sample independently), so no resampling is written
here. rliable, the paper's library, would do the same, but its 1.2 release fails to import with the
current ``arch``/pandas and pulls arch, statsmodels and seaborn for one function.

Intervals are percentile intervals over a fixed number of resamples from a fixed generator, so a
report rebuilt from the same records prints the same intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float | None = None  # None: too few values for an interval; printed alone when low == high
    high: float | None = None

    def text(self, scale: float = 1.0, number: str = ".3g") -> str:
        """"value [low, high]" (``number`` formats each), or the value alone when there is no width."""
        value = format(self.value * scale, number)
        if self.low is None or self.low == self.high:  # one value, or seeds that all agree
            return value
        return f"{value} [{format(self.low * scale, number)}, {format(self.high * scale, number)}]"


def iqm(values, axis=-1):
    """The mean of the middle half (25% trimmed from each end; with fewer than 4 values, the mean)."""
    return stats.trim_mean(values, 0.25, axis=axis)


def _strata(strata, misses: bool = False) -> list[np.ndarray]:
    if misses:  # a target never reached costs ∞
        kept = [np.asarray([math.inf if v is None else v for v in stratum], dtype=float) for stratum in strata]
    else:
        kept = [np.asarray([v for v in stratum if v is not None and math.isfinite(v)], dtype=float)
                for stratum in strata]
    return [stratum for stratum in kept if len(stratum)]


def _bootstrap(strata: list[np.ndarray], statistic) -> Estimate:
    value = float(statistic(*strata, axis=-1))
    if all(len(s) < 2 for s in strata):  # nothing to resample
        return Estimate(value)
    with np.errstate(invalid="ignore"):  # ∞ costs (misses) make scipy's standard error ∞ − ∞; unused here
        result = stats.bootstrap(strata, statistic, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                                 method="percentile", vectorized=True, axis=-1, rng=np.random.default_rng(SEED))
    # with ∞ among the resampled statistics, a percentile between two of them interpolates ∞ − ∞: it is ∞
    low, high = (math.inf if math.isnan(v) else float(v) for v in result.confidence_interval)
    return Estimate(value, low, high)


def iqm_interval(strata, misses: bool = False) -> Estimate | None:
    """The IQM of every value of every stratum (a list of per-seed values per problem; ``None`` and
    non-finite values dropped), with its stratified bootstrap interval; ``None`` if nothing is left.
    With ``misses``, ``None`` counts as ∞ and ∞ is kept (a cost never paid because a target was never
    reached): the IQM is then ∞ once more than a quarter of the values are."""
    strata = _strata(strata, misses)
    if not strata:
        return None
    return _bootstrap(strata, lambda *samples, axis: iqm(np.concatenate(samples, axis=axis), axis=axis))


def _improvement(x: np.ndarray, y: np.ndarray, higher_is_better: bool, axis=-1):
    """P(X > Y) + P(X = Y)/2 over all pairs of one stratum (the Mann-Whitney U statistic over n·m)."""
    x, y = np.moveaxis(x, axis, -1)[..., :, None], np.moveaxis(y, axis, -1)[..., None, :]
    better = (x > y) if higher_is_better else (x < y)
    return (better + 0.5 * (x == y)).mean(axis=(-2, -1))


def probability_of_improvement(pairs, higher_is_better: bool = True) -> Estimate | None:
    """The probability that a run of X beats a run of Y on a problem drawn uniformly: ``pairs`` is one
    (X's values, Y's values) per problem; each problem weighs the same. ``None`` if no problem has both."""
    kept = [(x, y) for x, y in ((_strata([x]), _strata([y])) for x, y in pairs) if x and y]
    if not kept:
        return None
    samples = [sample for x, y in kept for sample in (x[0], y[0])]

    def statistic(*samples, axis):
        return np.mean([_improvement(samples[i], samples[i + 1], higher_is_better, axis)
                        for i in range(0, len(samples), 2)], axis=0)
    return _bootstrap(samples, statistic)


def band(runs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM and interval at each column of ``runs`` (seeds × points), over the seeds with a value there
    (NaN: a seed that stopped early). A column with one value has that value as its band."""
    centre, low, high = (np.full(runs.shape[1], np.nan) for _ in range(3))
    for column in range(runs.shape[1]):
        estimate = iqm_interval([runs[:, column].tolist()])
        if estimate is not None:
            centre[column] = estimate.value
            low[column], high[column] = ((estimate.value, estimate.value) if estimate.low is None
                                         else (estimate.low, estimate.high))
    return centre, low, high
