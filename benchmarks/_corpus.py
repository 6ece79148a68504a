"""A real-text conversational corpus and natural-language questions about it, offline.

The corpus is the **Chit Chat Challenge dataset** (BYU Perception, Control and Cognition lab,
MIT licence; copyright 2019 Perception, Control and Cognition Lab), shipped inside the PyPI
wheel ``chitchat-dataset`` (in the ``bench`` extra) as ``chitchat_dataset/dataset.json``:
7,168 open-domain conversations between two people, 258,145 utterances. A *turn* here is one
message: the consecutive utterances of one speaker, joined with a space: 138,737 turns.

- Roles: the first speaker of a conversation is ``user``, the other ``assistant``.
- Keys: ``f"u{u}:s{s}:{n}"`` (``create_memory_key``-style): whole conversations are given to
  user ``u`` until it has ~500 turns (``TURNS_PER_USER``), ``s`` is the conversation's number
  within that user and ``n`` the turn's number in the conversation. A user scope ``u17``
  therefore holds ~500 memories.
- Sizes beyond the corpus (1M) cycle it. Copy ``c >= 1`` of a turn is made distinct from copy
  0: its text starts with a speaker name, ``"{Name}: "``, with ``Name`` picked from ``NAMES``
  by (copy, conversation, speaker), and every first name from ``NAMES`` that the text itself
  mentions is replaced by another one of the list (rotated by the copy number). Users carry
  on counting across copies (``u`` keeps growing), so keys never repeat.

When ``chitchat-dataset`` is not installed, ``load_turns`` falls back to a **synthetic**
corpus (template sentences of English stop words and a small embedded English word list,
clearly labelled: ``Corpus.source`` says so and the benchmarks print it). Its figures are not
comparable with the real corpus.

``questions`` builds ~200 natural-language questions of 8-12 words (e.g. "When did Maria tell
me about the dentist and the wedding?"), from templates full of stop words whose slots are
filled with content words drawn from the corpus's turns: half rare (in 2-20 turns), half
common (among the 600 most frequent non-stop words), plus first names.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TURNS_PER_USER = 500
_WORD = re.compile(r"[A-Za-z][A-Za-z']+")


def _list(text: str) -> list[str]:
    """Words of a literal (one per blank), for the word lists below."""
    return text.split()


SEED = 20261126

REAL_SOURCE = "chitchat-dataset (Chit Chat Challenge, BYU PCC lab, MIT licence)"
FALLBACK_SOURCE = (
    "SYNTHETIC FALLBACK: chitchat-dataset is not installed; template sentences, "
    "figures NOT comparable with the real corpus (pip install -e '.[bench]')"
)

NAMES = _list(
    "Maria James John Mary Robert Patricia Michael Jennifer William Linda David Elizabeth "
    "Richard Barbara Joseph Susan Thomas Jessica Charles Sarah Christopher Karen Daniel Nancy "
    "Matthew Lisa Anthony Betty Mark Margaret Donald Sandra Steven Ashley Paul Kimberly Andrew "
    "Emily Joshua Donna Kenneth Michelle Kevin Dorothy Brian Carol George Amanda Edward Melissa "
    "Ronald Deborah Timothy Stephanie Jason Rebecca Jeffrey Sharon Ryan Laura Jacob Cynthia Gary "
    "Kathleen Nicholas Amy Eric Shirley Jonathan Angela Stephen Helen Larry Anna Justin Brenda "
    "Scott Pamela Brandon Nicole Benjamin Emma Samuel Samantha Gregory Katherine Frank Christine "
    "Alexander Debra Raymond Rachel Patrick Catherine Jack Carolyn Dennis Janet Jerry Ruth Tyler "
    "Maria Aaron Heather Jose Diane Adam Virginia Henry Julie Nathan Joyce Douglas Victoria"
)
NAMES = tuple(dict.fromkeys(NAMES))  # unique, in order

STOP_WORDS = frozenset(
    _list(
        """a about above after again against all also am an and any are aren't as at be because
    been before being below between both but by can can't could couldn't did didn't do does
    doesn't doing don't down during each even ever few for from further get got had hadn't has
    hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his
    how how's i i'd i'll i'm i've if in into is isn't it it's its itself just know let's like
    lol me more most much mustn't my myself no nor not now of off oh ok okay on once only or
    other ought our ours ourselves out over own really same shan't she she'd she'll she's should
    shouldn't so some such than that that's the their theirs them themselves then there there's
    these they they'd they'll they're they've think this those through to too um under until up
    very was wasn't we we'd we'll we're we've well were weren't what what's when when's where
    where's which while who who's whom why why's will with won't would wouldn't yeah yes you
    you'd you'll you're you've your yours yourself yourselves im dont thats ive youre"""
    )
)
# Chat fillers and light verbs: not the "content words" a question names (still searched).
_FILLERS = frozenset(
    _list(
        """haha hahaha lol lmao yeah yep nope hey hello hmm wow cool nice good great awesome sure
    gonna wanna going went go goes gone get gets getting got make made say said tell told
    want wanted thing things lot lots pretty actually probably definitely maybe kinda sounds
    sound right fun love liked likes one two way time much many something anything stuff"""
    )
)
_PLAIN = re.compile(r"^[a-z]{3,14}$")
_REPEAT = re.compile(r"(.)\1\1")

# Question templates: 8-12 words once filled; {w} is a content word, {name} a first name.
TEMPLATES = (
    "What did you say about the {w} last week?",
    "When did {name} tell me about the {w} and the {w}?",
    "Do you remember what I told you about my {w}?",
    "What was the name of that {w} we talked about?",
    "Can you remind me what {name} said about the {w}?",
    "Did I ever mention that I like {w} or {w}?",
    "Where was I going when we talked about {w} again?",
    "How did you feel about the {w} that {name} mentioned?",
    "Why did I say the {w} was better than the {w}?",
    "Is there anything I said about {w} and my {w}?",
    "When did {name} get in trouble because of the {w}?",
    "What do you know about my {w} and my {w}?",
    "Have we ever talked about {w} when we were at {w}?",
    "Tell me again what happened with {name} and the {w}.",
    "Which {w} did I say that I wanted to try?",
    "Did {name} ever say anything to you about {w}?",
)


# For the synthetic fallback only: everyday English content words (no data file needed).
_FALLBACK_WORDS = _list(
    "car accident dentist wedding birthday coffee pizza movie school college exam teacher "
    "brother sister mother father dog cat hiking camping beach mountain summer winter job boss "
    "interview apartment rent money vacation trip flight hotel guitar piano music concert game "
    "basketball soccer football tennis running gym diet breakfast dinner lunch restaurant "
    "cooking recipe garden flowers book novel library church mission friend roommate party "
    "weekend holiday christmas halloween snow rain weather phone computer internet video "
    "netflix show episode season homework project class major chemistry biology history "
    "math english spanish language country city town farm horse bike bus train doctor "
    "hospital medicine headache sleep nap dream family cousin grandma grandpa baby kids "
    "church temple hobby painting drawing photography camera shopping clothes shoes store"
)


@dataclass
class Corpus:
    """Turns ``(key, {"role", "content"})``, where they came from, and how many users."""

    turns: list[tuple[str, dict[str, Any]]]
    source: str
    real: bool
    users: int
    notes: list[str] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [value["content"] for _, value in self.turns]

    def user_of(self, index: int) -> str:
        """The user scope (``u17``) of turn ``index``."""
        return self.turns[index][0].split(":", 1)[0]


#: The conversations' texts, parsed once from the package's 40 MB ``dataset.json`` and kept
#: (13 MB, read in a few ms): parsing the package's file took ~1 s each time a corpus loaded.
CACHE = Path(__file__).resolve().parent / "results" / "cache"


@functools.cache
def _chitchat_conversations() -> list[list[str]] | None:
    """Each conversation as its turns' texts, or None if the package is not installed.
    Cached in this process and on disk, keyed by the package file's size and mtime."""
    try:
        import chitchat_dataset  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = Path(chitchat_dataset.__file__).with_name("dataset.json")
    stat = path.stat()
    # (Bump the version when _parse_chitchat changes what it keeps.)
    cached = CACHE / f"chitchat-turns-v1-{stat.st_size}-{stat.st_mtime_ns}.json"
    try:
        return list(json.loads(cached.read_text()))
    except (OSError, ValueError):
        pass
    conversations = _parse_chitchat(path)
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(conversations))
        tmp.replace(cached)  # whole or not at all, for a process reading it meanwhile
    except OSError:
        pass
    return conversations


def _parse_chitchat(path: Path) -> list[list[str]]:
    data = json.loads(path.read_text())
    conversations = []
    for conversation in data.values():
        turns = [
            " ".join(u["text"] for u in message).strip() for message in conversation["messages"]
        ]
        turns = [t for t in turns if t]
        if turns:
            conversations.append(turns)
    return conversations


def _synthetic_conversations(rng: random.Random, turns_wanted: int) -> list[list[str]]:
    """The fallback: short template sentences, 20 turns a conversation."""
    frames = (
        "I think my {w} was really {w} this week",
        "did you ever go to the {w} with your {w}?",
        "oh yeah my {name} loves {w} and {w}",
        "we should talk about the {w} later, I have a {w} now",
        "what do you like to do on the {w}?",
        "honestly I am not sure about the {w} but the {w} was fun",
    )
    conversations, total = [], 0
    while total < turns_wanted:
        turns = []
        for _ in range(20):
            text = rng.choice(frames)
            while "{w}" in text:
                text = text.replace("{w}", rng.choice(_FALLBACK_WORDS), 1)
            turns.append(text.replace("{name}", rng.choice(NAMES)))
        conversations.append(turns)
        total += len(turns)
    return conversations


_NAME_RE = re.compile(r"\b(" + "|".join(NAMES) + r")\b")


def _vary(text: str, copy: int, conversation: int, speaker: int) -> str:
    """Copy ``copy`` (>= 1) of a turn: a speaker name in front, mentioned names rotated."""
    shift = 7 * copy

    def rotate(match: re.Match[str]) -> str:
        return NAMES[(NAMES.index(match.group(1)) + shift) % len(NAMES)]

    name = NAMES[(copy * 31 + conversation * 2 + speaker) % len(NAMES)]
    return f"{name}: {_NAME_RE.sub(rotate, text)}"


def load_turns(n: int) -> Corpus:
    """``n`` turns keyed ``u{u}:s{s}:{n}``: the real corpus if installed, cycled past its end."""
    conversations = _chitchat_conversations()
    real = conversations is not None
    if conversations is None:
        conversations = _synthetic_conversations(random.Random(SEED), min(n, 150_000))
    base = sum(len(c) for c in conversations)
    notes = [f"{base:,} turns in {len(conversations):,} conversations"]
    if n > base:
        notes.append(
            f"{n:,} > {base:,}: corpus cycled {-(-n // base)} times; copies after the first "
            "start with a speaker name and rotate the first names they mention"
        )
    turns: list[tuple[str, dict[str, Any]]] = []
    user, user_turns, session = 0, 0, 0
    copy = 0
    while len(turns) < n:
        for ci, conversation in enumerate(conversations):
            if user_turns >= TURNS_PER_USER:
                user, user_turns, session = user + 1, 0, 0
            for ti, text in enumerate(conversation):
                content = text if copy == 0 else _vary(text, copy, ci, ti % 2)
                role = "user" if ti % 2 == 0 else "assistant"
                turns.append((f"u{user}:s{session}:{ti}", {"role": role, "content": content}))
                if len(turns) == n:
                    break
            user_turns += len(conversation)
            session += 1
            if len(turns) == n:
                break
        copy += 1
    return Corpus(turns, REAL_SOURCE if real else FALLBACK_SOURCE, real, user + 1, notes)


def words(text: str) -> list[str]:
    """Lower-case words (letters and apostrophes), as the questions' slots are drawn."""
    return [w.lower() for w in _WORD.findall(text)]


def questions(corpus: Corpus, count: int = 200, sample: int = 100_000) -> list[str]:
    """``count`` natural-language questions of 8-12 words about the first ``sample`` turns.

    Deterministic (seeded). Slots are filled half with rare content words (in 2-20 turns) and
    half with common ones (the 600 most frequent non-stop words); names come from ``NAMES``,
    preferring those the corpus mentions.
    """
    rng = random.Random(SEED)
    df: Counter[str] = Counter()
    for _, value in corpus.turns[:sample]:
        df.update(set(words(value["content"])))
    names = {n.lower() for n in NAMES}
    content = [
        w
        for w in df
        if w not in STOP_WORDS
        and w not in names
        and w not in _FILLERS
        and _PLAIN.match(w)
        and not _REPEAT.search(w)
        and not any(f in w for f in ("haha", "lol", "hehe"))
    ]
    common = sorted(content, key=lambda w: (-df[w], w))[:600]
    rare = sorted(w for w in content if 2 <= df[w] <= 20) or common
    mentioned = [n for n in NAMES if df[n.lower()] > 0] or list(NAMES)
    out = []
    while len(out) < count:
        text = TEMPLATES[len(out) % len(TEMPLATES)]
        while "{w}" in text:
            text = text.replace("{w}", rng.choice(rare if rng.random() < 0.5 else common), 1)
        text = text.replace("{name}", rng.choice(mentioned))
        assert 8 <= len(text.split()) <= 12, text
        out.append(text)
    return out


def long_query(corpus: Corpus, size: int = 1_000_000) -> str:
    """About ``size`` bytes of random words: the corpus's distinct words drawn uniformly."""
    rng = random.Random(SEED + 1)
    vocab = sorted({w for _, v in corpus.turns[:100_000] for w in words(v["content"])})
    parts, total = [], 0
    while total < size:
        word = rng.choice(vocab)
        parts.append(word)
        total += len(word) + 1
    return " ".join(parts)[:size]
