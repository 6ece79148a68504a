"""The searchable text of a memory and its analysis: what every backend's index agrees on."""

from __future__ import annotations

import json
from typing import Any

from tta_dev_primitives.exceptions import InvalidArgumentTypeError
from tta_dev_primitives.search._analyzer import Analyzer, Query
from tta_dev_primitives.search._facets import facets
from tta_dev_primitives.search._fields import check_text_fields, searchable_strings

__all__ = ["MAX_EMBED_CHARS", "OFF_LOOP_BYTES", "Indexing", "default_analyzer"]

#: The longest text sent to an embedder, in characters: models read a few hundred tokens
#: (MiniLM 256, OpenAI's 8,191), so the first 8,000 characters carry what a vector can hold,
#: and a hostile 8 MiB memory never reaches a paid API whole.
MAX_EMBED_CHARS = 8000

#: Stored memories read back (a page of a change feed, as JSON) are analysed on a worker thread
#: when they add up to more than this: analysis runs at 3-12 MiB/s of Python, and the event loop
#: must go on serving other requests meanwhile.
OFF_LOOP_BYTES = 16 * 1024

_DEFAULT: Analyzer | None = None


def default_analyzer() -> Analyzer:
    """The shared default: English stop words, Snowball English stemming, last-word prefix."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Analyzer()
    return _DEFAULT


class Indexing:
    """Which fields of a value are searched (``text_fields``) and how they become terms."""

    __slots__ = ("analyzer", "text_fields")

    def __init__(self, analyzer: Analyzer | None = None, text_fields: Any = None) -> None:
        if analyzer is not None and not isinstance(analyzer, Analyzer):
            raise InvalidArgumentTypeError(
                f"analyzer must be an Analyzer, got {type(analyzer).__name__}"
            )
        self.analyzer = analyzer or default_analyzer()
        self.text_fields = check_text_fields(text_fields)

    def terms(self, value: Any) -> dict[str, int]:
        """Term counts of a (validated or decoded) value, and its facets (``_facets``)."""
        return self.analyse(value, text=False)[0]

    def analyse(self, value: Any, *, text: bool) -> tuple[dict[str, int], str]:
        """``terms(value)`` and, with ``text``, what is embedded: the searched strings, one per
        line, cut at ``MAX_EMBED_CHARS`` ("" without). The value's strings are read once."""
        strings = searchable_strings(value, self.text_fields)
        counts = self.analyzer.term_counts(strings)
        counts.update(dict.fromkeys(facets(value), 1))
        return counts, "\n".join(strings)[:MAX_EMBED_CHARS] if text else ""

    def payload_terms(self, payload: str | bytes) -> dict[str, int]:
        """Term counts of a stored JSON payload; none for one that is not a JSON object."""
        try:
            value = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return {}
        return self.terms(value)

    def query(self, text: str) -> Query:
        """The analysed query."""
        return self.analyzer.query(text)
