"""Review: Thai, Lao, Khmer and Myanmar cluster grams (``search._tokens.cluster_grams``).

``cluster_grams`` promises "no term is a mark": a cluster is a letter with the marks written on
it. A run that starts with a mark (one typed after a Latin letter, a digit or a space) and a
combining accent of the joining blocks written on a Thai letter each made a term of a lone mark,
which then matches every other text holding the same stray mark.
"""

from __future__ import annotations

import unicodedata

import pytest

from tta_dev_primitives.search._analyzer import Analyzer


@pytest.mark.parametrize(
    "text",
    [
        "x\u0e31\u0e01",  # a Thai vowel sign after a Latin letter
        "caf\u00e9\u0e31",
        "5 \u0e48\u0e01\u0e32",  # a tone mark after a space
        "\u0e01\u0300\u0e02",  # a combining grave (a joining mark) on a Thai letter
        "\u1780\u0301",  # and on a Khmer one
    ],
)
def test_no_term_is_a_lone_mark(text: str) -> None:
    analyzer = Analyzer()
    for terms in (analyzer.terms(text), list(analyzer.query(text).terms)):
        assert terms
        assert not [t for t in terms if unicodedata.category(t[0]).startswith("M")], terms


def test_a_word_finds_itself_in_a_sentence_with_a_joining_mark() -> None:
    analyzer = Analyzer()
    word = "\u0e01\u0300\u0e02"
    assert set(analyzer.query(word).terms) <= set(analyzer.terms("\u0e44\u0e1b" + word))
