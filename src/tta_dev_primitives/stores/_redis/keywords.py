"""Keyword search in the Query Engine, ranked by the library's own BM25 (``search._bm25``).

The engine's ``BM25STD`` has k1 1.2 and b 0.5 where ours are 1.5 and 0.5-0.75 (by the texts'
average length, ``_bm25.length_b``), and scores a scoped
search with the whole index's statistics where in-process search uses the scope's. So the
engine only proposes candidates (its own top ``candidates(limit)``), and they are scored here
with our formula and our statistics, fetched in the same round trip (one pipeline per server;
a scope with more matches than candidates takes one more, for its counts):

- each query term's document frequency: an ``FT.SEARCH ... LIMIT 0 0`` count; in a scope
  whose matches all came back as candidates (the usual case for one user), counted in them;
- the number of documents and their total length: running totals the write scripts keep in
  each partition, for the namespace in its facts (``ftdocs``, ``ftlen``) and for each first key
  segment (a user: the usual scope) in ``fs``, summed over partitions (on a cluster by one
  script per master); for a deeper scope (``user:session``), an ``FT.AGGREGATE`` sum of its
  documents' length field ``n`` (``engine_counts``);
- each candidate's term frequencies, from its ``t`` field (our terms, repeated) and its ``w``
  (names: stop words written capitalised, asked for as TAGs, ``Term.name``).

- the frequency of a term the engine cannot match exactly (``ambiguous``: an unfinished word
  longer than the ``MAX_TOKEN`` characters of a term it keeps, or a whole word of exactly that
  many), from the candidates' own values, one more round trip for such a query only.

On a cluster every master's counts are added up, so scores use the whole namespace's (or the
whole scope's) statistics, as in-process. Scores then equal in-process ones: same arithmetic
in the same order. Two approximations remain, both about an unfinished last word:
- its document frequency is counted as in-process counts it (``Term.held``: a document once
  per word it completes to) from the candidates when they are every match, else (a filter's
  candidates, a large scope's) from its own matches when they are few (``held_count``);
  with more, it is the engine's count of documents holding any of its completions (they
  differ for a document holding two completions, such as ``camel`` and ``camelcase`` of
  ``camelCase``, or ``know`` and ``known``: common in chat text);
- the engine chooses the candidates scoring each completion at full weight with its own idf,
  where ours counts a completion half the word itself (``COMPLETION_TF``): with more matches
  than candidates, and the word itself common while many rare completions outnumber the
  window, the documents of the word itself can miss the candidates (a review built such a
  case: 200 "cat", 150 distinct "cat..." words; a mix of real words kept the top 10 equal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Final, NamedTuple

from tta_dev_primitives._blocked import heavy_in_own_thread
from tta_dev_primitives._gather import gather_all
from tta_dev_primitives.search._analyzer import MAX_QUERY_TERMS, Query
from tta_dev_primitives.search._bm25 import (
    COMPLETION_TF,
    bm25,
    ceiling,
    idf,
    length_b,
    token_order,
)
from tta_dev_primitives.search._facets import is_facet
from tta_dev_primitives.search._scopes import first_segment, in_scope
from tta_dev_primitives.search._term_index import TF_CAP
from tta_dev_primitives.stores._redis import master_scripts, replies
from tta_dev_primitives.stores._redis.documents import (
    MAX_TOKEN,
    encode_term,
    is_name,
    level_tags,
    prefix_tokens,
    scope_filter,
    scope_tag,
)
from tta_dev_primitives.stores._redis.layout import FACT_ENGINE_DOCS, FACT_ENGINE_LENGTH, Layout
from tta_dev_primitives.stores._redis.queries import TIE_MARGIN
from tta_dev_primitives.stores._redis.shards import Shard

__all__ = [
    "MAX_QUERY_TOKENS",
    "MAX_TIE_SORT",
    "Stats",
    "Term",
    "ambiguous",
    "ask",
    "candidates",
    "common",
    "counts",
    "engine_counts",
    "exact_tf",
    "name_levels",
    "rescore",
    "terms_of",
    "totals",
]

#: Query terms sent to the engine (a pasted page of text stays a bounded query).
MAX_QUERY_TOKENS: Final = 64

#: Matches past which ties are left in the engine's order (oldest first) rather than sorted
#: by sequence with FT.AGGREGATE, whose cost grows with the matches (~3 us each here).
MAX_TIE_SORT: Final = 20_000

#: Candidates the engine proposes per search, at least; ``CANDIDATE_FACTOR`` x ``limit`` past it.
MIN_CANDIDATES: Final = 100
CANDIDATE_FACTOR: Final = 4


#: The weight, next to nothing, of a clause that chooses matches without scoring them: a
#: scope's or a filter's TAG, and a scoped search's union of terms (see ``_matching``). The
#: engine's BM25STD scores a TAG as a term of its own, with an IDF that favours short documents
#: (high for a small scope in a large namespace, and far too high once documents were indexed
#: again, until the engine's garbage collector runs: seen at 38), so it, not the words, chose
#: the candidates.
FAINT: Final = 1e-6
#: Engine rows decoded on the event loop at most (a few ms of Python); more, on a worker thread:
#: 40,000 rows (a search of limit 10,000) held the loop 370 ms.
ROWS_HERE: Final = 1000


def candidates(limit: int) -> int:
    """How many of the engine's best matches are rescored for a search of ``limit`` hits."""
    return max(MIN_CANDIDATES, CANDIDATE_FACTOR * limit)


class Term(NamedTuple):
    """A query term as the engine matches it (``syntax``) and as a document's tokens do: one
    ``token``, or (an unfinished word, ``prefixes`` set) every token starting with one of
    ``prefixes``, ``token`` itself counting one and any other ``COMPLETION_TF``. A ``name`` (a
    stop word written as one) is a tag of the ``w`` field, any other term a word of ``t``."""

    syntax: str
    token: str
    prefixes: tuple[str, ...] = ()
    name: bool = False

    @property
    def clause(self) -> str:
        """The query clause matching this term alone."""
        return f"@w:{{{self.syntax}}}" if self.name else f"@t:{self.syntax}"

    def tf(self, tokens: list[str]) -> float:
        """This term's frequency in a document of these tokens (a few dozen: counted in C)."""
        whole = tokens.count(self.token)
        if not self.prefixes:
            return whole
        # (Less the word itself: its token, or for a long word the first characters of its
        # encoding kept beside its digest, starts with the prefix.)
        completions = sum(1 for t in tokens if t.startswith(self.prefixes)) - whole
        return whole + COMPLETION_TF * completions

    def held(self, tokens: list[str]) -> int:
        """How many of the terms this one matches a document of these tokens holds: 0 or 1,
        or for an unfinished word the distinct words it completes to (in-process counts a
        completion's documents for each word, so a document holding two counts twice)."""
        if not self.prefixes:
            return int(self.token in tokens)
        return len({t for t in tokens if t.startswith(self.prefixes)})


def ambiguous(query: Query) -> list[int]:
    """The query terms the engine cannot match exactly, by index: it keeps a term longer than
    ``MAX_TOKEN`` (encoded) as a digest with its first ``MAX_TOKEN`` characters beside it, so
    an unfinished last word longer than that is sent cut to them (other long words begin
    alike), and a whole word of exactly ``MAX_TOKEN`` plain characters is the very token kept
    beside every longer word it begins. ``engine_search._exact`` counts these from each
    memory's own terms."""
    found = [
        i
        for i, term in enumerate(query.terms)
        if len(term) == MAX_TOKEN and encode_term(term) == term
    ]
    if query.prefix_last and query.terms:
        last = len(query.terms) - 1
        if any(len(token) - 1 > MAX_TOKEN for token in prefix_tokens(query.terms[last])):
            found = [i for i in found if i != last] + [last]
    return found


def exact_tf(term: str, held: Mapping[str, int], prefix: bool) -> tuple[float, int]:
    """A query term's frequency in a memory holding the term counts ``held``, as ``TermIndex``
    counts it (each count capped at ``TF_CAP``, as postings keep it): for an unfinished word
    (``prefix``), the word itself and ``COMPLETION_TF`` for each occurrence of another term
    starting with it; and how many of those words the memory holds (``Term.held``)."""
    if not prefix:
        count = min(held.get(term, 0), TF_CAP)
        return float(count), int(count > 0)
    tf, words = 0.0, 0
    for other, count in held.items():
        if other.startswith(term) and not is_facet(other):
            tf += min(count, TF_CAP) * (1.0 if other == term else COMPLETION_TF)
            words += 1
    return tf, words


def name_levels(terms: Sequence[Term]) -> list[list[Term]]:
    """For each name among ``terms``, the terms with that name asked by its level tags
    (``documents.level_tags``) instead: the engine reads a TAG once, however often a memory
    holds it, so its candidates for a name are the shortest memories holding it; asked again
    so, the candidates are those holding it most often (shortest first), which in-process
    BM25 may rank above them."""
    found = []
    for i, term in enumerate(terms):
        if term.name:
            levels = Term("|".join(level_tags(term.token)), term.token, (), True)
            found.append([*terms[:i], levels, *terms[i + 1 :]])
    return found


def terms_of(query: Query, most: int = MAX_QUERY_TOKENS) -> list[Term]:
    """The query's terms (at most ``most``), the last a prefix if typed so."""
    terms = query.terms[:most]
    found = [Term(encode_term(t), encode_term(t), (), is_name(t)) for t in terms]
    if query.prefix_last and len(terms) == len(query.terms):
        # A word longer than the engine matches is a digest, with its first ``MAX_TOKEN``
        # characters beside it (``encoded_forms``): a longer prefix is cut to those.
        prefixes = [t[:-1][:MAX_TOKEN] for t in prefix_tokens(terms[-1])]
        syntax = "(" + "|".join(f"{p}*" for p in prefixes) + ")"
        found[-1] = Term(syntax, encode_term(terms[-1]), tuple(prefixes))
    return found


class Stats(NamedTuple):
    """BM25's statistics over what a search covers: documents, their total length, and each
    query term's document frequency."""

    docs: int
    length: int
    dfs: list[int]

    def __add__(self, other: object) -> Stats:
        assert isinstance(other, Stats)
        dfs = [a + b for a, b in zip(self.dfs, other.dfs, strict=True)]
        return Stats(self.docs + other.docs, self.length + other.length, dfs)


#: A candidate: ``(key, seq, length, tfs)``, ``tfs`` each query term's frequency in it.
Row = tuple[str, int, int, list[float]]


class Answer(NamedTuple):
    """One server's candidates and its statistics; ``complete``: every match is a candidate."""

    rows: list[Row]
    stats: Stats
    complete: bool


#: Words a scoped search asks by alone at most (``common``).
MAX_ALONE: Final = 2


def common(stats: Stats, complete: bool, crowd: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Which asks again would find the candidates the first one missed: the terms to ask
    without (the others alone; () if none, or if it would be every term), and (``crowd``, a
    scoped search's candidates) the terms to ask by, each alone. Nothing when every match was
    a candidate.

    A term in over half the documents searched weighs little in our BM25, but in the engine's
    a term counting more documents than the index holds (a rewritten document's old copy
    counts until the garbage collector runs, after 100 of them) takes an IDF of about 38 and
    chooses the candidates alone: with a name in every memory, 5 rewrites were enough. In a
    scope, the engine still weighs words by the whole index: a word rare there but in a fifth
    of the user's memories (a partner's name) filled every candidate, and the memories of the
    question's other words, which the scope's statistics weigh more, were never proposed; two
    such words, one weighed far above the other, left out the other's best matches. The first
    ask's candidates, kept beside the others', hold the best matches of the common terms."""
    if complete or stats.docs <= 0:
        return (), ()
    held = [i for i, df in enumerate(stats.dfs) if df > 0]
    most = [i for i in held if 2 * stats.dfs[i] > stats.docs]
    crowding = [i for i in held if crowd and stats.dfs[i] >= crowd and i not in most]
    without = tuple(i for i in held if i in most or i in crowding)
    if len(without) == len(held):
        without = tuple(most) if len(most) < len(held) else ()
    # (Each alone is one more query, on a connection of its own: a question of many such
    # words, as uniform text makes them, asks without them only.)
    alone = tuple(crowding) if len(held) > 1 and len(crowding) <= MAX_ALONE else ()
    return without, alone


def _rows(rows: Sequence[tuple[str, float, dict[str, Any]]], terms: Sequence[Term]) -> list[Row]:
    return [_row(key, fields, terms) for key, _, fields in rows]


def _row(key: str, fields: dict[str, Any], terms: Sequence[Term]) -> Row:
    """A candidate, its ``t`` (our terms, repeated) and ``w`` (names, repeated) split once, into
    each term's frequency (a name's token is no word's: the two never meet)."""
    tokens = fields.get("t", "").split()
    if "w" in fields:
        tokens += fields["w"].split()
    tfs = [term.tf(tokens) for term in terms]
    return (key, replies.seq(fields) or 0, _number(fields.get("n")), tfs)


def engine_counts(scope: str | None) -> bool:
    """True if the engine counts the documents and length a search of ``scope`` scores with
    (``FT.AGGREGATE``): a scope deeper than one segment, whose running totals are not kept."""
    return scope is not None and first_segment(scope) != scope


def _read_totals(pipe: Any, bases: Sequence[str], scope: str | None) -> None:
    """Queue the reads of ``bases``' running totals for ``scope`` (``engine_counts`` says when)."""
    for base in bases:
        if scope is None:
            pipe.hmget(Layout.facts(base), FACT_ENGINE_DOCS, FACT_ENGINE_LENGTH)
        else:
            pipe.hget(Layout.segment_totals(base), scope)


def _sum_totals(values: Sequence[Any], scope: str | None) -> tuple[int, int]:
    """The documents and length in the replies of ``_read_totals``, summed over partitions."""
    docs = length = 0
    for value in values:
        # a facts pair, or "<documents> <length>" (nothing for a segment with none)
        pair = value if scope is None else (replies.text(value) or "0 0").split()
        docs, length = docs + _number(pair[0]), length + _number(pair[1])
    return docs, length


async def totals(
    client: Any, shards: Sequence[Shard], bases: Sequence[str], scope: str | None
) -> tuple[int, int]:
    """The documents and total length of the namespace (``scope`` None) or of one first
    segment, on a cluster: the running totals of the partitions each master of ``shards``
    owns, summed there by one script (``master_scripts.TOTALS``), all masters at once; read
    through the cluster client for partitions no shard owns, or if a script is refused (a
    partition moved)."""
    from redis import exceptions as rexc

    owned: dict[str, list[str]] = {shard.node.name: [] for shard in shards}
    elsewhere: list[str] = []
    for base in bases:
        node = client.get_node_from_key(Layout.facts(base))
        (owned[node.name] if node is not None and node.name in owned else elsewhere).append(base)
    try:
        parts = await gather_all(*(
            shard.script(client, master_scripts.TOTALS, scope or "", *owned[shard.node.name])
            for shard in shards if owned[shard.node.name]
        ))  # fmt: skip
    except rexc.ResponseError:
        elsewhere, parts = list(bases), []
    docs, length = sum(_number(p[0]) for p in parts), sum(_number(p[1]) for p in parts)
    if elsewhere:
        pipe = client.pipeline(transaction=False)
        _read_totals(pipe, elsewhere, scope)
        more = _sum_totals(await pipe.execute(), scope)
        docs, length = docs + more[0], length + more[1]
    return docs, length


def _counts(shard: Shard, terms: Sequence[Term], where: str, rows: int = 0) -> list[Any]:
    """A count of the documents holding each term (``LIMIT 0 0``), within ``where``; with
    ``rows``, an unfinished last word's first ``rows`` matches come back with their terms
    (``held_count``)."""
    last = len(terms) - 1
    return [
        ("FT.SEARCH", shard.name, f"{t.clause}{where}", "VERBATIM", "RETURN", 1, "t",
         "LIMIT", 0, rows, *shard.tail)
        if rows and i == last and t.prefixes else
        ("FT.SEARCH", shard.name, f"{t.clause}{where}", "VERBATIM", "LIMIT", 0, 0,
         *shard.tail)
        for i, t in enumerate(terms)
    ]  # fmt: skip


async def held_count(client: Any, shard: Shard, term: Term, reply: Any, asked: int) -> int | None:
    """An unfinished word's document frequency as in-process counts it (a document once per
    word it completes to, ``Term.held``), from its count query's rows (``asked`` at most) when
    they are all its matches; None when there are more (the engine's count then stands)."""
    matches = replies.total(reply)
    if matches > asked:
        return None
    if matches > ROWS_HERE:  # (decoded off the event loop, as the candidates are)
        found = await heavy_in_own_thread(partial(replies.rows, scores=False), reply)
    else:
        found = replies.rows(reply, scores=False)
    # (On a cluster the engine loads ``t`` only for documents in its index name's slot.)
    names = [fields[replies.ID] for _, _, fields in found if "t" not in fields]
    texts = dict(zip(names, await _texts(client, shard, names), strict=True)) if names else {}
    return sum(
        term.held((fields["t"] if "t" in fields else texts[fields[replies.ID]][0]).split())
        for _, _, fields in found
    )


def _commands(
    shard: Shard, terms: Sequence[Term], window: int, scope: str | None,
    wanted: tuple[str, ...], count_scope: bool, faint: tuple[int, ...] = (), again: bool = False,
) -> list[Any]:  # fmt: skip
    """The candidates (within the scope and the filter's facets ``wanted``) and the
    statistics (the scope's, as in-process: a filter chooses documents, not how they score);
    the candidates alone when asked ``again`` (the caller has the statistics)."""
    where = scope_filter(scope, " ")
    tags = scope_filter(scope, " ", wanted, FAINT)
    text = _matching([t for i, t in enumerate(terms) if i not in faint], bool(tags)) + tags
    # On a cluster the engine loads only SORTABLE fields (kept in the index itself) for
    # documents outside its index name's slot: there ``t`` and ``w`` are read by name
    # (``_texts``).
    fields = ["q", "n"] if shard.node is not None else ["q", "n", "t", "w"]
    # VERBATIM: the engine would otherwise stem each query term and match that stem as a
    # word too ("dimension" finding documents of "dimens"), miscounting frequencies.
    commands: list[Any] = [(
        "FT.SEARCH", shard.name, text, "VERBATIM", "SCORER", "BM25STD", "WITHSCORES",
        "RETURN", len(fields), *fields, "LIMIT", 0, window, *shard.tail,
    )]  # fmt: skip
    if again:  # candidates asked again (``common``, ``name_levels``)
        return commands
    if scope is None:  # many matches: count each term's documents in the same round trip
        # (A filter's candidates are not all the matches: an unfinished word's own, if few,
        # give its count as in-process, ``held_count``.)
        commands += _counts(shard, terms, where, rows=window if wanted else 0)
    elif count_scope:
        # The scope's documents with a length (a further vector's document has none): counted
        # by ``exists``, not by a ``@n:[-inf +inf]`` clause, which intersects the whole
        # namespace's numeric index (5.7 ms against 0.8 ms per search at 1M memories once
        # Redis had reloaded its RDB).
        commands.append((
            "FT.AGGREGATE", shard.name, f"@s:{{{scope_tag(scope)}}}",
            "APPLY", "exists(@n)", "AS", "h",
            "GROUPBY", 0, "REDUCE", "SUM", 1, "@h", "AS", "c", "REDUCE", "SUM", 1, "@n", "AS", "l",
            *shard.tail,
        ))  # fmt: skip
    return commands


def _matching(terms: Sequence[Term], scoped: bool) -> str:
    """The clause matching any of ``terms`` and scoring them. Beside a scope's or a filter's
    clause, the engine's union of terms under-counts the terms of about one match in ten
    (RediSearch 2.10: one in six searches over a 750-memory scope missed a best match), so
    there the union only chooses the matches, weighing next to nothing, and each term scores
    as an optional clause of its own. Words are matched in ``t``, names in ``w``."""
    words = "|".join(t.syntax for t in terms if not t.name)
    names = "|".join(t.syntax for t in terms if t.name)
    parts = ([f"@t:({words})"] if words else []) + ([f"@w:{{{names}}}"] if names else [])
    union = parts[0] if len(parts) == 1 else "(" + "|".join(parts) + ")"
    if not scoped or len(terms) == 1:
        return union
    optional = " ".join(f"~{t.clause}" for t in terms)
    return f"{union}=>{{$weight:{FAINT}}} {optional}"


async def _run_all(
    client: Any, shard: Shard, commands: list[Any], bases: Sequence[str], scope: str | None
) -> tuple[list[Any], bool]:
    """The commands on the shard's server, one round trip: a pipeline on one server (with the
    running totals of ``bases`` for ``scope``, if any); on a cluster master one script
    (``master_scripts.SEARCH``, which also reads the first reply's documents' ``t``: then
    True), or, if the server refuses the engine's commands in a script, each command at once."""
    from redis import exceptions as rexc

    if shard.node is None:
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        _read_totals(pipe, bases, scope)
        return list(await pipe.execute()), False
    try:
        got = await shard.script(client, master_scripts.SEARCH, *master_scripts.flatten(commands))
        return list(got), True
    except rexc.ResponseError:
        pass
    return await gather_all(*(shard.run(client, *command) for command in commands)), False


async def counts(client: Any, shard: Shard, terms: Sequence[Term], scope: str | None) -> list[int]:
    """Each term's document frequency in ``scope`` (None: the whole index) on one server, in
    one round trip."""
    commands = _counts(shard, terms, scope_filter(scope, " "))
    got, _ = await _run_all(client, shard, commands, (), scope)
    return [replies.total(count) for count in got]


def _number(value: Any) -> int:
    return 0 if value is None else int(float(replies.text(value)))


async def ask(
    client: Any, shard: Shard, terms: Sequence[Term], window: int, scope: str | None,
    bases: Sequence[str] = (), wanted: tuple[str, ...] = (), faint: tuple[int, ...] = (),
    again: bool = False,
) -> Answer:  # fmt: skip
    """One server's candidates (holding the facets ``wanted``, if any) and statistics: the
    running totals of ``bases`` (on one server, read in the same pipeline; none: the caller
    reads the namespace's) or the engine's count of the scope (``engine_counts``). The terms
    ``faint`` (``common``) are left out of the query, not out of the rows' frequencies; with
    them, or ``again``, the candidates come without statistics (the caller has them)."""
    counted = engine_counts(scope)
    again = again or bool(faint)
    commands = _commands(shard, terms, window, scope, wanted, counted, faint, again)
    totals = () if counted or again else bases
    got, with_texts = await _run_all(client, shard, commands, totals, scope)
    reply = got[0]
    dfs = [replies.total(count) for count in got[1 : 1 + len(terms)]] if scope is None else []
    if scope is None and wanted and not again and terms and terms[-1].prefixes:
        held = await held_count(client, shard, terms[-1], got[len(terms)], window)
        if held is not None:
            dfs[-1] = held
    if window > ROWS_HERE:  # as many rows may come back
        rows = await heavy_in_own_thread(partial(replies.rows, scores=True), reply)
    else:
        rows = replies.rows(reply, scores=True)
    complete = replies.total(reply) <= len(rows)
    every_match = not wanted and complete
    ties = len(rows) == window and window > TIE_MARGIN and rows[-1 - TIE_MARGIN][1] == rows[-1][1]
    if ties and shard.node is None and replies.total(reply) <= MAX_TIE_SORT:
        # Equal engine scores run past the window: the engine orders them oldest first, so
        # ask it to sort by score, then sequence (slower: only when ties need it, and only
        # over a bounded number of matches). Not on a cluster: there the engine loads
        # ``__key`` only for documents in its index name's slot.
        reply = await shard.run(
            client, "FT.AGGREGATE", shard.name, commands[0][2], "VERBATIM", "ADDSCORES", "SCORER",
            "BM25STD", "LOAD", 5, "@__key", "@q", "@n", "@t", "@w",
            "SORTBY", 4, "@__score", "DESC", "@q", "DESC", "MAX", window, *shard.tail,
        )  # fmt: skip
        ordered = replies.aggregate_rows(reply)
        if len(ordered) < len(replies.aggregate_fields(reply)):
            # Rows the engine could not load (a key holding a NUL byte: ``_load_unloaded``)
            # come back nameless here: keep those the first reply named.
            named = {row[0] for row in ordered}
            ordered += [row for row in rows if row[0] not in named]
        rows = ordered
    if shard.node is None:
        await _load_unloaded(client, rows)
    rows = [row for row in rows if replies.seq(row[2]) is not None and in_scope(row[0], scope)]
    if shard.node is not None and rows and not with_texts:
        texts = await _texts(client, shard, [fields[replies.ID] for _, _, fields in rows])
        for (_, _, fields), (t, w) in zip(rows, texts, strict=True):
            fields["t"], fields["w"] = t, w
    if len(rows) > ROWS_HERE:
        found = await heavy_in_own_thread(_rows, rows, terms)
    else:
        found = _rows(rows, terms)
    if again:  # candidates asked again: the caller has the statistics
        return Answer(found, Stats(0, 0, [0] * len(terms)), complete)
    if scope is not None:
        if every_match:  # a scope's matches are often all candidates: count them here
            dfs = [sum(1 for row in found if row[3][i]) for i in range(len(terms))]
        else:  # one more round trip
            where = scope_filter(scope, " ")
            asked = _counts(shard, terms, where, rows=window)
            counts, _ = await _run_all(client, shard, asked, (), scope)
            dfs = [replies.total(count) for count in counts]
            if terms and terms[-1].prefixes:
                # A filter's candidates, or a large scope's, are not all of the scope's
                # matches: its unfinished word is counted from its own matches, if few.
                held = await held_count(client, shard, terms[-1], counts[-1], window)
                if held is not None:
                    dfs[-1] = held
    if every_match and terms and terms[-1].prefixes:
        # Every match is here: an unfinished word's frequency as in-process has it, a
        # document counted once per word it holds that the prefix completes to.
        dfs[-1] = sum(terms[-1].held(fields.get("t", "").split()) for _, _, fields in rows)
    if counted:
        groups = replies.aggregate_fields(got[len(commands) - 1])
        group = groups[0] if groups else {}
        docs, length = _number(group.get("c")), _number(group.get("l"))
    else:
        docs, length = _sum_totals(got[len(commands) :], scope)
    return Answer(found, Stats(docs, length, dfs), complete)


async def _load_unloaded(client: Any, rows: Sequence[tuple[str, float, dict[str, Any]]]) -> None:
    """Read, by name, the fields the engine did not load for some candidates: it loads a
    field that is not SORTABLE (``t``) by the document's name as a C string, so for a key
    holding a NUL byte it finds no hash and returns the row without any field. One more round
    trip, only when that happened."""
    missing = [
        (fields, name)
        for _, _, fields in rows
        if ("q" not in fields or "t" not in fields)
        and (name := fields.get(replies.ID) or fields.get("__key")) is not None
    ]
    if not missing:
        return
    pipe = client.pipeline(transaction=False)
    for _, name in missing:
        pipe.hmget(name, "q", "n", "t", "w")
    for (fields, _), values in zip(missing, await pipe.execute(), strict=True):
        for name, value in zip(("q", "n", "t", "w"), values, strict=True):
            if value is not None:
                fields[name] = replies.text(value)


async def _texts(client: Any, shard: Shard, names: Sequence[str]) -> list[tuple[str, str]]:
    """The ``t`` and ``w`` fields of these documents of a cluster master, by name: one script
    there (``master_scripts.TEXTS``), or, if a document has moved to another master since it was
    found (a resharding), one pipeline that follows it."""
    from redis import exceptions as rexc

    try:
        found = await shard.script(client, master_scripts.TEXTS, *names)
    except rexc.ResponseError:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(name, "t", "w")
        found = [value for pair in await pipe.execute() for value in pair]
    values = [replies.text(v) or "" for v in found]
    return list(zip(values[::2], values[1::2], strict=True))


def rescore(rows: Sequence[Row], stats: Stats) -> tuple[list[tuple[str, float, int]], float]:
    """``(key, score, seq)`` of the candidates, scored as ``TermIndex`` scores in-process: the
    terms held by some document (the ``MAX_QUERY_TERMS`` rarest of them), added rarest first;
    and those terms' ``_bm25.ceiling`` (hybrid's keyword scale, as in-process)."""
    docs, length, dfs = stats
    if docs <= 0:
        return [], 0.0
    kept = [i for i, df in enumerate(dfs) if df > 0]
    idfs = [idf(dfs[i], docs) for i in kept]
    if len(kept) > MAX_QUERY_TERMS:
        cut = sorted(token_order(idfs)[:MAX_QUERY_TERMS])
        kept, idfs = [kept[j] for j in cut], [idfs[j] for j in cut]
    order = token_order(idfs)
    avg_len = length / docs
    b = length_b(avg_len)
    scored = []
    for key, seq, n, row_tfs in rows:
        tfs = [row_tfs[i] for i in kept]
        if not any(tfs):
            continue
        score = 0.0
        for j in order:
            if tfs[j]:
                score += bm25(float(tfs[j]), float(n), avg_len, idfs[j], b)
        scored.append((key, score, seq))
    return scored, ceiling(idfs)
