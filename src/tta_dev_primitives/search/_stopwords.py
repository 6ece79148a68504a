"""English stop words: the function words a question is full of and a memory is not about.

Articles, pronouns, auxiliaries, prepositions, conjunctions, question words and the pieces that
``\\w+`` leaves of contractions ("don't" -> "don", "t"). Content words stay, even frequent ones
("like", "time", "good"): BM25's idf already weighs those down, and a user may mean them.
"""

from __future__ import annotations

__all__ = ["ENGLISH"]

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
