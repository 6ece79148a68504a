"""``as_embedder``: whatever a user passes as ``embed=`` (a function, a LangChain ``Embeddings``,
a sentence-transformers model, ``"provider:model"``) becomes one ``Embedder``.

Nothing optional is imported here: LangChain and sentence-transformers objects are recognised
by their methods, and a ``"provider:model"`` string imports LangChain on its first embed.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import threading
from typing import Any

from tta_dev_primitives.exceptions import (
    EmbeddingError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)

from ._embedder import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CACHE_SIZE,
    DEFAULT_EMBED_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    BatchFunction,
    Embedder,
)

__all__ = ["as_embedder"]

PROVIDERS_EXTRA = "embedding-providers"


def as_embedder(
    embed: Any,
    dims: int | None = None,
    *,
    model_id: str | None = None,
    cache_size: int = DEFAULT_CACHE_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    embed_timeout: float = DEFAULT_EMBED_TIMEOUT,
) -> Embedder:
    """An ``Embedder`` for ``embed``, which may be:

    - an ``Embedder``: returned as it is (held to ``dims`` if given; other options are its own);
    - a ``"provider:model"`` string, as LangGraph takes (``"openai:text-embedding-3-small"``):
      loaded by LangChain's ``init_embeddings`` on first use;
    - a LangChain ``Embeddings`` (``embed_documents``/``embed_query``, async ones preferred);
    - a sentence-transformers model (``encode``; ``encode_document``/``encode_query`` if it has
      them), run in a thread with ``normalize_embeddings=True``;
    - a function over a batch, sync or async: ``list[str] -> list[list[float]]`` or an array.
    """
    if isinstance(embed, Embedder):
        if dims is not None:
            embed.fix_dims(dims)
        return embed
    options: dict[str, Any] = {
        "dims": dims,
        "cache_size": cache_size,
        "batch_size": batch_size,
        "max_concurrency": max_concurrency,
        "embed_timeout": embed_timeout,
    }
    if isinstance(embed, str):
        return _from_provider_string(embed, model_id, options)
    if _is_langchain(embed):
        documents, query = _langchain_functions(embed)
        name = model_id or f"langchain:{_class_path(embed)}{_model_name(embed)}"
        return Embedder(documents, query, model_id=name, **options)
    if callable(getattr(embed, "encode", None)):
        documents, maybe_query = _sentence_transformers_functions(embed)
        name = model_id or f"sentence-transformers:{_class_path(embed)}{_model_name(embed)}"
        return Embedder(documents, maybe_query, model_id=name, **options)
    if callable(embed):
        return Embedder(embed, model_id=model_id, **options)
    raise InvalidArgumentTypeError(
        "embed must be a function list[str] -> vectors, a LangChain Embeddings, a "
        "sentence-transformers model, a 'provider:model' string or an Embedder; "
        f"got {type(embed).__name__}"
    )


def _is_langchain(obj: Any) -> bool:
    return callable(getattr(obj, "embed_documents", None)) and callable(
        getattr(obj, "embed_query", None)
    )


def _langchain_functions(model: Any) -> tuple[BatchFunction, BatchFunction]:
    """Batch functions for a LangChain ``Embeddings``: documents for memories, query for search."""
    adocuments = getattr(model, "aembed_documents", None)
    aquery = getattr(model, "aembed_query", None)

    async def documents(texts: list[str]) -> object:
        if callable(adocuments):
            return await adocuments(texts)
        return await asyncio.to_thread(model.embed_documents, texts)

    async def query(texts: list[str]) -> object:
        if callable(aquery):
            return await asyncio.gather(*(aquery(text) for text in texts))
        return await asyncio.to_thread(lambda: [model.embed_query(text) for text in texts])

    return documents, query


def _sentence_transformers_functions(
    model: Any,
) -> tuple[BatchFunction, BatchFunction | None]:
    """Sync batch functions (the ``Embedder`` runs them in a thread) over ``model.encode``."""
    encode_document: Any = getattr(model, "encode_document", None)
    encode_query: Any = getattr(model, "encode_query", None)
    asymmetric = callable(encode_document) and callable(encode_query)
    encode_docs: Any = encode_document if asymmetric else model.encode

    def documents(texts: list[str]) -> object:
        result: object = encode_docs(texts, normalize_embeddings=True)
        return result

    def query(texts: list[str]) -> object:
        result: object = encode_query(texts, normalize_embeddings=True)
        return result

    return documents, (query if asymmetric else None)


def _from_provider_string(spec: str, model_id: str | None, options: dict[str, Any]) -> Embedder:
    """An ``Embedder`` that loads ``spec`` with LangChain's ``init_embeddings`` on first use."""
    provider, colon, name = spec.partition(":")
    if not (colon and provider.strip() and name.strip()):
        raise InvalidArgumentError(
            f"an embedding model string is 'provider:model' (e.g. "
            f"'openai:text-embedding-3-small'), got {spec!r}"
        )
    if importlib.util.find_spec("langchain") is None:
        raise EmbeddingError(
            f"embedding model {spec!r} is loaded by LangChain's init_embeddings, which is not "
            f"installed: pip install 'tta-dev-primitives[{PROVIDERS_EXTRA}]' and the provider's "
            f"package (e.g. langchain-{provider.replace('_', '-')})"
        )
    lock = threading.Lock()
    loaded: list[Any] = []

    def load() -> Any:
        with lock:  # two first batches in parallel threads load the model once
            if not loaded:
                try:
                    module = importlib.import_module("langchain.embeddings")
                    loaded.append(module.init_embeddings(spec))
                except Exception as exc:
                    raise EmbeddingError(
                        f"could not load embedding model {spec!r}: {type(exc).__name__}: {exc} "
                        f"(the provider's package, e.g. langchain-{provider}, must be installed)"
                    ) from exc
            return loaded[0]

    async def functions() -> tuple[BatchFunction, BatchFunction]:
        model = loaded[0] if loaded else await asyncio.to_thread(load)
        return _langchain_functions(model)

    async def documents(texts: list[str]) -> object:
        return await (await functions())[0](texts)

    async def query(texts: list[str]) -> object:
        return await (await functions())[1](texts)

    return Embedder(documents, query, model_id=model_id or spec, **options)


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _model_name(obj: Any) -> str:
    """``:name`` of the model an object wraps, when it says (``model``, ``model_name``...)."""
    for attribute in ("model", "model_name", "model_name_or_path", "name_or_path"):
        value = getattr(obj, attribute, None)
        if isinstance(value, str) and value:
            return f":{value}"
    return ""
