"""When to probe a failed backend again: exponential backoff with a ceiling."""

from __future__ import annotations

from tta_dev_primitives._checks import check_seconds
from tta_dev_primitives.exceptions import InvalidArgumentError

__all__ = ["Backoff"]


class Backoff:
    """Delay before the next probe after ``failures`` consecutive failed probes.

    The first retry waits ``initial`` seconds; each further failure doubles the wait, up to
    ``maximum``. ``Backoff(1, 30).delay(n)`` is 1, 2, 4, 8, 16, 30, 30, ... for n = 1, 2, ...
    """

    __slots__ = ("factor", "initial", "maximum")

    def __init__(self, initial: float, maximum: float, factor: float = 2.0) -> None:
        initial = check_seconds("recovery_interval", initial)
        if not maximum >= initial:
            raise InvalidArgumentError(
                f"max_recovery_interval must be at least recovery_interval, got {maximum!r}"
            )
        if not factor >= 1:
            raise InvalidArgumentError(f"backoff factor must be at least 1, got {factor!r}")
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.factor = float(factor)

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        if failures <= 1:
            return self.initial
        exponent = min(failures - 1, 64)  # beyond this the ceiling applies anyway
        return min(self.initial * self.factor**exponent, self.maximum)
