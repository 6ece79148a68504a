"""Embeddings: turn what a user passes as ``embed=`` into one async, cached, batching embedder.

``as_embedder(embed, dims=None)`` accepts a batch function (sync or async), a LangChain
``Embeddings``, a sentence-transformers model, a ``"provider:model"`` string or an ``Embedder``;
``await embedder.embed(texts)`` returns unit-norm float32 rows. ``encode_vector`` and
``decode_vector`` are the bytes a vector is stored as. Optional packages (LangChain,
sentence-transformers) are never imported by this module.
"""

from ._adapters import as_embedder
from ._embedder import Embedder
from ._vectors import decode_vector, encode_vector

__all__ = ["Embedder", "as_embedder", "decode_vector", "encode_vector"]
