"""The searchable text of a memory and its analysis: what every backend's index agrees on."""

from __future__ import annotations

import json
from typing import Any

from tta_dev_primitives.exceptions import InvalidArgumentTypeError
from tta_dev_primitives.search._analyzer import Analyzer, Query
from tta_dev_primitives.search._fields import check_text_fields, searchable_strings

__all__ = ["Indexing", "default_analyzer"]

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
        """Term counts of a (validated or decoded) value."""
        return self.analyzer.term_counts(searchable_strings(value, self.text_fields))

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
