"""The recovery probe's backoff: delays grow from the interval to the ceiling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tta_dev_primitives.stores._backoff import Backoff


def test_delays_double_up_to_the_ceiling() -> None:
    """1, 2, 4, 8, 16, then 30 for ever, with interval 1 and ceiling 30."""
    backoff = Backoff(1.0, 30.0)
    assert [backoff.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


@given(
    initial=st.floats(0.001, 100),
    ceiling_factor=st.floats(1, 1000),
    failures=st.integers(0, 10_000),
)
def test_delay_stays_between_interval_and_ceiling(
    initial: float, ceiling_factor: float, failures: int
) -> None:
    """Whatever the failure count, the delay is within [initial, maximum] and never decreases."""
    backoff = Backoff(initial, initial * ceiling_factor)
    delay = backoff.delay(failures)
    assert backoff.initial <= delay <= backoff.maximum
    assert backoff.delay(failures + 1) >= delay


@pytest.mark.parametrize(("initial", "maximum"), [(0, 1), (-1, 1), (2, 1)])
def test_bad_intervals_are_refused(initial: float, maximum: float) -> None:
    """A non-positive interval, or a ceiling below it, is a ValueError."""
    with pytest.raises(ValueError, match="interval"):
        Backoff(initial, maximum)
