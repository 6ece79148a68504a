"""Adapters that plug tta-dev-primitives into other agent frameworks.

Each submodule needs its framework installed and is imported on its own:

- ``tta_dev_primitives.integrations.langchain`` (``pip install 'tta-dev-primitives[langchain]'``):
  primitives as LCEL runnables and back, and a chat message history backed by ``MemoryPrimitive``
  for ``RunnableWithMessageHistory``.
- ``tta_dev_primitives.integrations.langchain_cache`` (``[langchain]``): ``LLMCache``, a model
  cache for ``set_llm_cache`` on the same storage as ``CachePrimitive``.
- ``tta_dev_primitives.integrations.langgraph`` (``pip install 'tta-dev-primitives[langgraph]'``):
  a LangGraph ``BaseStore`` backed by ``MemoryPrimitive``.
- ``tta_dev_primitives.integrations.langgraph_checkpoint`` (``[langgraph]``):
  ``MemoryCheckpointSaver``, a LangGraph checkpointer backed by ``MemoryPrimitive``.
"""
