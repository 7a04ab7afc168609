"""The Eq. 7 schedule at its phase boundaries, against hand-computed values."""

import math

import pytest
from paper_maths import anneal_value

from zobench.optimizers.anneal import AnnealSchedule

T1, T2, T3 = 1024, 16000, 20000


def cosine(t, phi):
    """Eq. 7's middle phase written out for the paper's T1, T2, T3."""
    return 0.5 + 0.5 * math.cos(math.pi * (t - 1024) / (20000 - (t - 1024) * phi * 4000 / 14976))


@pytest.mark.parametrize("t", [1, 2, 1023])
def test_warm_up_is_one(t):
    assert AnnealSchedule(T1=T1, T2=T2, T3=T3)(t) == (1.0, 1.0, 1.0)


def test_continuous_at_T1():
    assert AnnealSchedule(T1=T1, T2=T2, T3=T3)(T1) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("t", [1025, 5000, 8512, 15999])
def test_cosine_phase(t):
    values = AnnealSchedule(T1=T1, T2=T2, T3=T3)(t)
    assert values.alpha == pytest.approx(cosine(t, 1.0), abs=1e-12)
    assert values.beta1 == pytest.approx(cosine(t, 0.1), abs=1e-12)
    assert values.beta2 == pytest.approx(cosine(t, 1.5), abs=1e-12)


def test_values_just_before_T2():
    # by hand, t = 15999: ratio (t-T1)/denominator = 0.93592 (α), 0.76403 (β1), 1.06961 (β2),
    # then 0.5 + 0.5 cos(π ratio)
    values = AnnealSchedule(T1=T1, T2=T2, T3=T3)(T2 - 1)
    assert values.alpha == pytest.approx(0.01010, abs=1e-4)
    assert values.beta1 == pytest.approx(0.13122, abs=1e-4)
    assert values.beta2 == pytest.approx(0.01193, abs=1e-4)


@pytest.mark.parametrize("t", [T2, 18000, T3])
def test_last_phase_readings(t):
    assert AnnealSchedule(T1=T1, T2=T2, T3=T3)(t) == (0.9, 0.9, 0.9)  # Eq. 7
    assert AnnealSchedule(T1=T1, T2=T2, T3=T3, last_phase="text")(t) == (0.5, 0.9, 0.01)  # the prose


def test_default_T2_is_four_fifths_of_T3():
    assert AnnealSchedule(T3=20000).T2 == 16000


def test_is_a_pure_function_of_the_step():
    schedule = AnnealSchedule(T1=T1, T2=T2, T3=T3)
    first = [schedule(t) for t in (5000, 9000, 5000)]
    assert first[0] == first[2] == schedule(5000)


def test_matches_the_independent_statement_everywhere():
    schedule = AnnealSchedule(T1=10, T2=80, T3=100)
    for t in range(1, 101):
        expected = tuple(anneal_value(t, phi, 10, 80, 100, 0.9) for phi in (1.0, 0.1, 1.5))
        assert schedule(t) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(T3=100, T1=1024), "T1 < T2"),
    (dict(T3=100, T1=10, T2=20), "denominator"),
    (dict(T3=100, T1=10, last_phase="eq8"), "last_phase"),
])
def test_impossible_schedules_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AnnealSchedule(**kwargs)
