"""friendsqa: people's questions over multi-session dialogues, with judged evidence turns.

FriendsQA (Emory NLP, Apache-2.0, vendored in ``data/friendsqa``) asks questions about scenes
of the TV show *Friends*. Annotators wrote the questions and marked the span that answers
each one, so every answer names the utterance it is in. This is the kind of set a memory of
conversations is judged on:

- the questions are written by people about what was said, naming the people and things;
- the judged evidence is the turn that holds the answer, not the reply to the question.

This module turns it into a scoped conversational memory:

- **Memories.** Every utterance of the dev and test splits (5,183 turns, 249 scenes, 17
  episodes of seasons 1-4) is a memory keyed ``s01:e23:c06:12`` (season, episode, scene,
  utterance), its text ``"Speaker: utterance"``. The transcripts' stage notes (``#NOTE#``)
  are kept as plain text. The tokenised text is detokenised (``do n't`` -> ``don't``).
- **Questions.** All 2,383 questions, the paraphrased ones too, each ONE search scoped to
  its episode (``scope="s01:e23"``: the episode's scenes are its sessions, 211-588 turns), or
  with ``SEASON``, to its season (four or five episodes, 1,004-1,566 turns). A question's
  judged evidence is every utterance an annotator's answer span lies in (1-5, mostly 1).

Caveats:
- Other turns may answer as well and count as misses.
- Speaker names are in the memory's text. So "Who ...?" questions, whose answer is a
  speaker, can be found by keyword; an agent memory that keeps the speaker as metadata
  would not.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "friendsqa"
SPLITS = ("dev", "tst")
EPISODE, SEASON = "episode", "season"

Built = tuple[
    list[tuple[str, str]], list[tuple[int, str]], dict[int, dict[str, int]], dict[int, str],
]  # fmt: skip

# The corpus is tokenised (Penn Treebank style); put the words back as people type them.
_DETOKENISE = (
    (re.compile(r" n't\b"), "n't"),
    (re.compile(r" '(s|re|m|ll|ve|d)\b", re.IGNORECASE), r"'\1"),
    (re.compile(r" ([.,!?;:%)])"), r"\1"),
    (re.compile(r"([($]) "), r"\1"),
    (re.compile(r"\b(gon|wan|got) (na|ta)\b", re.IGNORECASE), r"\1\2"),
)


def detokenise(text: str) -> str:
    for pattern, repl in _DETOKENISE:
        text = pattern.sub(repl, text)
    return text.strip()


def scenes() -> list[dict[str, Any]]:
    """The vendored splits' scenes, as the repository ships them."""
    out: list[dict[str, Any]] = []
    for split in SPLITS:
        with gzip.open(DATA / f"friendsqa_{split}.json.gz", "rt", encoding="utf-8") as f:
            out += json.load(f)["data"]
    return out


def _turn(utterance: dict[str, Any]) -> str:
    text = detokenise(utterance["utterance"])
    speakers = [s for s in utterance["speakers"] if s != "#NOTE#"]
    if not speakers:
        return text  # a stage note
    names = " & ".join("All" if s == "#ALL#" else s for s in speakers)
    return f"{names}: {text}"


def build(scope_by: str = EPISODE) -> Built:
    """Docs, questions, judgments and each question's scope (its episode or season)."""
    docs: list[tuple[str, str]] = []
    queries: list[tuple[int, str]] = []
    qrels: dict[int, dict[str, int]] = {}
    scopes: dict[int, str] = {}
    for scene in scenes():
        season, episode, clip = scene["title"].split("_")
        prefix = f"{season}:{episode}:{clip}"
        scope = season if scope_by == SEASON else f"{season}:{episode}"
        (paragraph,) = scene["paragraphs"]
        for utterance in paragraph["utterances:"]:
            docs.append((f"{prefix}:{utterance['uid']}", _turn(utterance)))
        for qa in paragraph["qas"]:
            qid = len(queries) + 1
            queries.append((qid, detokenise(qa["question"])))
            qrels[qid] = {f"{prefix}:{a['utterance_id']}": 1 for a in qa["answers"]}
            scopes[qid] = scope
    return docs, queries, qrels, scopes
