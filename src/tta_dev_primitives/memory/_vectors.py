"""What a memory's vectors are made of, and which search mode a call gets: the embedding side
of ``MemoryPrimitive``, which has an embedder only with ``embed=``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from tta_dev_primitives.exceptions import InvalidArgumentError, InvalidArgumentTypeError
from tta_dev_primitives.search._indexing import MAX_EMBED_CHARS
from tta_dev_primitives.telemetry._memory_ops import embed_span

if TYPE_CHECKING:
    from tta_dev_primitives.embeddings import Embedder

__all__ = ["MAX_VECTORS", "Mode", "memory_vector", "search_mode"]

Mode = Literal["keyword", "semantic", "hybrid"]

#: Most vectors one memory may have (``add(..., vector_text=[...])``).
MAX_VECTORS = 256


def search_mode(embedder: Embedder | None, mode: str | None) -> Mode:
    """The mode a search runs in: hybrid by default with an embedder, else keyword; a mode by
    meaning without an embedder is refused."""
    if mode is None:
        return "keyword" if embedder is None else "hybrid"
    if mode != "keyword" and embedder is None:
        raise InvalidArgumentError(
            f"mode={mode!r} searches by meaning and needs an embedder: MemoryPrimitive(embed=...)"
        )
    return mode  # type: ignore[return-value]


async def memory_vector(
    embedder: Embedder | None,
    text: str,
    vector_text: str | Sequence[str] | None,
) -> Any:
    """The embedding of ``text``, what is searched in the value (or of ``vector_text``), or None.

    Several texts give a 2-D array, one row each (the index scores the best row).
    """
    if vector_text is None:
        texts = None
    elif isinstance(vector_text, str):
        texts = [vector_text]
    elif isinstance(vector_text, Sequence) and all(isinstance(t, str) for t in vector_text):
        texts = list(vector_text)
    else:
        raise InvalidArgumentTypeError(
            f"vector_text must be a str, a list of str or None, got {vector_text!r:.80}"
        )
    if embedder is None:
        if texts and any(texts):
            raise InvalidArgumentError("vector_text needs an embedder: MemoryPrimitive(embed=...)")
        return None
    if texts is None:  # the searched text; blank when the value has none
        texts = [text] if text.strip() else []
    texts = [t[:MAX_EMBED_CHARS] for t in texts if t]  # as given, whitespace included
    if len(texts) > MAX_VECTORS:
        raise InvalidArgumentError(
            f"vector_text holds {len(texts):,} texts; a memory has at most {MAX_VECTORS} "
            "vectors (each costs a model call's share and every search's time)"
        )
    if not texts:
        return None  # nothing to embed: found by keyword (or recency) only
    with embed_span(embedder.model_id, len(texts)):
        vectors = await embedder.embed_documents(texts)
    return vectors[0] if len(texts) == 1 else vectors
