"""One place that turns a URL into a backend, for memory, the cache and the CLI alike.

Only Redis URLs (``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``; a Cluster is
detected on connect) name a remote backend today. The Redis client is imported here, on first
use, so a program that never configures Redis never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from tta_dev_primitives.stores._urls import check_redis_url

if TYPE_CHECKING:
    from tta_dev_primitives.search._indexing import Indexing
    from tta_dev_primitives.stores._base import SearchableBackend, StorageBackend

__all__ = ["backend_from_url"]


@overload
def backend_from_url(url: str, *, namespace: str, timeout: float) -> StorageBackend: ...
@overload
def backend_from_url(
    url: str,
    *,
    namespace: str,
    timeout: float,
    indexing: Indexing,
    search_engine: str = "auto",
    **search_options: Any,
) -> SearchableBackend: ...
def backend_from_url(
    url: str,
    *,
    namespace: str,
    timeout: float,
    indexing: Indexing | None = None,
    search_engine: str = "auto",
    **search_options: Any,
) -> StorageBackend:
    """The backend ``url`` names: searchable (indexing memories with ``indexing``, searched by
    ``search_engine``, with ``search_options`` such as ``load_timeout``) if given.

    Raises ``InvalidArgumentError`` naming the problem (password hidden) for a malformed URL.
    """
    url = check_redis_url(url)
    if indexing is None:
        from tta_dev_primitives.stores._redis.backend import RedisBackend

        return RedisBackend(url, namespace=namespace, timeout=timeout)
    from tta_dev_primitives.stores._redis.search import RedisSearchBackend

    return RedisSearchBackend(
        url, namespace=namespace, timeout=timeout, indexing=indexing, search_engine=search_engine,
        **search_options,
    )  # fmt: skip
