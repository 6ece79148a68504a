"""How text is split into words before the analyzer makes them terms (``_analyzer``).

Runs of word characters, with the combining marks Python's ``\\w`` leaves out joined to their
word (Indic vowel signs) or dropped (Hebrew and Arabic points), NFC-composed; identifiers with
dots inside; runs of the scripts written without spaces (Chinese, Japanese, Korean; Thai, Lao,
Khmer, Myanmar); emoji. ASCII text, nearly all of it, takes a byte translation instead of a
regex.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Final

__all__ = [
    "ASCII_TOKEN_BYTES",
    "DROP_CHARS",
    "JOIN_MARKS",
    "WORD",
    "capitalised",
    "cluster_grams",
    "dotted",
    "fold",
    "gram_units",
    "grams",
    "identifier_parts",
    "normal",
    "token_patterns",
    "tokens_of",
    "words",
]

# Combining marks that belong to the word they follow: Python's \w leaves them out, so
# "नमस्ते" split at its vowel signs into "नमस" and "त" and "दुनिया" into single letters.
# Those of the combining blocks and of the Indic scripts (Devanagari to Sinhala: written with
# spaces) join their word; those of Hebrew and Arabic (points and harakat, mostly left out when
# people type) are dropped (``DROP_CHARS``). Scripts written without spaces (Thai, Lao, Khmer,
# Myanmar) are left as \w splits them: joining would make a sentence one word.
_JOIN_BLOCKS = ((0x0300, 0x036F), (0x0483, 0x0489), (0x0900, 0x0DFF), (0x1AB0, 0x1AFF),
                (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F))  # fmt: skip
_DROP_BLOCKS = ((0x0591, 0x05C7), (0x0610, 0x061A), (0x064B, 0x065F), (0x0670, 0x0670),
                (0x06D6, 0x06ED), (0x08D3, 0x08FF))  # fmt: skip


def _marks(blocks: tuple[tuple[int, int], ...], categories: str = "M") -> str:
    """The characters of ``blocks`` whose Unicode category starts with one of ``categories``
    (by default the combining marks, M*)."""
    return "".join(
        chr(c) for lo, hi in blocks for c in range(lo, hi + 1)
        if unicodedata.category(chr(c))[0] in categories
    )  # fmt: skip


JOIN_MARKS: Final = frozenset(_marks(_JOIN_BLOCKS))
_JOIN = re.escape("".join(sorted(JOIN_MARKS)))
WORD = re.compile(f"(?:\\w|[{_JOIN}])+")
# For ASCII text, \w is [A-Za-z0-9_]: mapping every other byte to a space and splitting gives the
# same words as the regex, about twice as fast (this is on the path of every add).
_ASCII_WORD_BYTES = bytes(
    b if (b < 128 and chr(b).isalnum()) or b == ord("_") else ord(" ") for b in range(256)
)
# Scripts written without spaces between words (and Hangul, whose words are long compounds).
_CJK = (
    "\u1100-\u11ff\u3005-\u3007\u3041-\u309f\u30a1-\u30fa\u30fc-\u30ff\u3131-\u318e"
    "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003134f"
)
# The other scripts written without spaces between words (Unicode's line-breaking class SA):
# Thai, Lao, Myanmar, Khmer, Tai Le, New Tai Lue, Tai Tham, Tai Viet. \w split them at every
# vowel sign and tone mark, so "หมอฟัน" (dentist) was "หมอฟ" and "น" and never matched the same
# word inside a sentence. Their letters, marks and digits make a run cut as CJK's is, into
# clusters (a letter with the marks on it: ``cluster_grams``).
_SPACELESS_BLOCKS = ((0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x1950, 0x19FF),
                     (0x1A20, 0x1AAF), (0xA9E0, 0xA9FF), (0xAA60, 0xAADF))  # fmt: skip
# A cluster's marks: the scripts' own and the joining ones (an accent typed on a letter). A
# mark that opens a run (typed after a Latin letter, a digit, a space) has no letter to be on:
# it is no term.
_CLUSTER_MARKS = re.escape(_marks(_SPACELESS_BLOCKS) + "".join(sorted(JOIN_MARKS)))
_SPACELESS = re.escape(_marks(_SPACELESS_BLOCKS, "LMN"))
#: A run of a script written without spaces longer than this makes its terms a piece at a time.
_LONG_RUN: Final = 4096
# Emoji and pictographs (skin-tone modifiers, joiners and variation selectors are not terms).
_EMOJI = "\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\U0001f000-\U0001f3fa\U0001f400-\U0001faff"
_RUNS = (
    f"(?P<cjk>[{_CJK}]+)|(?P<emoji>[{_EMOJI}])|(?P<spaceless>[{_SPACELESS}][{_SPACELESS}{_JOIN}]*)"
)
_WORD_CHAR = f"(?:[^\\W{_CJK}{_SPACELESS}]|[{_JOIN}])"
_PLAIN = f"[^\\W{_CJK}{_SPACELESS}]"
_PLAIN_WORD = re.compile(r"\w+")
_HAS_JOIN = re.compile(f"[{_JOIN}]")
DROP_CHARS: Final = _marks(_DROP_BLOCKS)
_HAS_DROP = re.compile("[" + re.escape(DROP_CHARS) + "]")
# ASCII text: every byte that is neither a word character nor a dot becomes a space.
ASCII_TOKEN_BYTES = bytes(
    b if (b < 128 and chr(b).isalnum()) or b in b"_." else ord(" ") for b in range(256)
)
# Where an identifier splits: underscores, and camelCase / HTTPServer case changes.
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[^\W_a-zA-Z]+")


@functools.cache
def token_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The token regex, and the same without the joining marks (text that holds none, most
    text, is split by one character class, about twice as fast, with the same tokens).

    Compiled on the first non-ASCII text: their classes hold every CJK and Thai range, about
    20 ms, which a process that only ever sees ASCII never pays at import.
    """
    token = re.compile(f"(?P<word>{_WORD_CHAR}+(?:\\.{_WORD_CHAR}+)*)|{_RUNS}")
    return token, re.compile(f"(?P<word>{_PLAIN}+(?:\\.{_PLAIN}+)*)|{_RUNS}")


@functools.cache
def _cluster() -> re.Pattern[str]:
    """A letter of a script written without spaces, with the marks on it (compiled on use)."""
    return re.compile(f"[^{_CLUSTER_MARKS}][{_CLUSTER_MARKS}]*")


def tokens_of(text: str) -> list[tuple[int, str]]:
    """``(kind, token)`` pairs of raw (not casefolded) text: 0 a word or identifier (dots
    inside), 1 a CJK run, 2 an emoji, 3 a run of Thai, Lao, Khmer or Myanmar."""
    if text.isascii():
        out: list[tuple[int, str]] = []
        for token in text.translate(ASCII_TOKEN_BYTES).split():
            if "." in token:
                out.extend((0, t) for t in dotted(token))
            else:
                out.append((0, token))
        return out
    found: list[tuple[int, str]] = []
    text = normal(text)
    marked, plain = token_patterns()
    for match in (marked if _HAS_JOIN.search(text) else plain).finditer(text):
        kind = match.lastindex or 1
        found.append((kind - 1, match.group(kind)))
    return found


def fold(text: str) -> str:
    """``text`` casefolded, Turkish "İ" as "i" (casefolding gives "i" and a combining dot
    above, which would keep "İstanbul" from finding "istanbul")."""
    folded = text.casefold()
    return folded.replace("i\u0307", "i") if "\u0307" in folded else folded


def normal(text: str) -> str:
    """Non-ASCII text composed (NFC: "é" typed as "e" and a combining accent is "é") and
    without Hebrew and Arabic points (``DROP_CHARS``)."""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    # (Searched first: translating every character through a dict doubled the cost of text
    # that holds no point, nearly all of it.)
    return _HAS_DROP.sub("", text) if _HAS_DROP.search(text) else text


def dotted(token: str) -> list[str]:
    """Word characters and dots, as ``token_patterns`` find them: single dots inside a token."""
    return [piece for piece in re.split(r"\.\.+", token.strip(".")) if piece]


def identifier_parts(token: str) -> list[str]:
    """The parts of an identifier (casefolded), or ``[]`` for a plain word."""
    pieces = [p for p in re.split(r"[._]", token) if p]
    if not pieces:  # underscores alone: the whole is the only term
        return []
    if len(pieces) == 1 and (token.islower() or token.isupper() or token.istitle()):
        return []
    parts = []
    for piece in pieces:
        if piece.isascii():
            parts.extend(_PART.findall(piece) or [piece])
        else:
            parts.append(piece)
    parts = [fold(p) for p in parts]
    return parts if len(parts) > 1 or parts[0] != fold(token) else []


def capitalised(token: str) -> bool:
    """A word written like a name ("Will", "WHO"), not "I" or "A"."""
    return len(token) > 1 and token[0].isupper()


def grams(run: str) -> Iterable[str]:
    """Characters and pairs of neighbouring characters of a CJK run."""
    if len(run) > _LONG_RUN:
        return chain.from_iterable(_gram_pieces(run))
    return (*run, *map(str.__add__, run, run[1:]))


def cluster_grams(run: str) -> Iterable[str]:
    """``grams`` of a Thai, Lao, Khmer or Myanmar run, whose characters are clusters: a letter
    with the vowel signs and tone marks written on it ("ที่" is one), so no term is a mark."""
    if len(run) > _LONG_RUN:
        return chain.from_iterable(_gram_pieces([m.group() for m in _cluster().finditer(run)]))
    units = _cluster().findall(run)
    return (*units, *map(str.__add__, units, units[1:]))


def gram_units(run: str, clusters: bool = False) -> list[str]:
    """The units ``grams`` (characters) or, with ``clusters``, ``cluster_grams`` (a letter with
    its marks) makes a run's terms of: each, and each pair of neighbours."""
    return _cluster().findall(run) if clusters else list(run)


def _gram_pieces(units: Sequence[str]) -> Iterator[Sequence[str]]:
    """``grams`` of a long run a piece at a time, in the same order: a run of millions of
    characters (a pasted book without punctuation) made at once is one C call that keeps the
    GIL, and so the event loop, for half a second."""
    for i in range(0, len(units), _LONG_RUN):
        yield units[i : i + _LONG_RUN]
    for i in range(0, len(units) - 1, _LONG_RUN):
        yield tuple(map(str.__add__, units[i : i + _LONG_RUN], units[i + 1 : i + _LONG_RUN + 1]))


def words(text: str) -> list[str]:
    r"""The casefolded runs of word characters (``\w+``) in ``text``, in order."""
    text = fold(text)
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORD_BYTES).decode("ascii").split()
    text = normal(text)
    return (WORD if _HAS_JOIN.search(text) else _PLAIN_WORD).findall(text)
