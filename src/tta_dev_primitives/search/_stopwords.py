"""English stop words: the function words a question is full of and a memory is not about.

Articles, pronouns, auxiliaries, prepositions, conjunctions, question words and the pieces that
``\\w+`` leaves of contractions ("don't" -> "don", "t"). Content words stay, even frequent ones
("like", "time", "good"): BM25's idf already weighs those down, and a user may mean them.
"""

from __future__ import annotations

from collections.abc import Iterable

from tta_dev_primitives.exceptions import InvalidArgumentTypeError
from tta_dev_primitives.search._tokens import words

__all__ = ["ENGLISH", "stop_words_of"]

# One string split into words reads better than 170 quoted items.
ENGLISH: frozenset[str] = frozenset(
    """
    a about above after again against ain all am an and any are aren as at be because been
    before being below between both but by can cannot could couldn d did didn do does doesn
    doing don down during each few for from further had hadn has hasn have haven having he her
    here hers herself him himself his how i if in into is isn it its itself just ll m ma me
    might mightn more most must mustn my myself needn no nor not now o of off on once only or
    other our ours ourselves out over own re s same shall shan she should shouldn so some such t
    than that the their theirs them themselves then there these they this those through to too
    under until up ve very was wasn we were weren what when where which while who whom whose why
    will with won would wouldn y you your yours yourself yourselves
    """.split()  # noqa: SIM905
)


def stop_words_of(given: object) -> frozenset[str]:
    """The words of an iterable of ``str`` (bytes, or numbers, would be read as their digits)."""
    if isinstance(given, bytes | bytearray) or not isinstance(given, Iterable):
        raise InvalidArgumentTypeError(
            f"stop_words must be 'english', an iterable of str or None, got {type(given).__name__}"
        )
    listed = list(given)
    odd = next((w for w in listed if not isinstance(w, str)), None)
    if odd is not None:
        raise InvalidArgumentTypeError(f"stop_words must hold str, got {type(odd).__name__}")
    return frozenset(w for s in listed for w in words(s))
