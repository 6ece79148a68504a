"""The Redis backend, a private package: each module has one job.

- ``connection``: clients per event loop, cluster detection, the timed call (``deadline``),
  error translation (``errors``), dead-connection retry, rediscovery, scripts, SCAN; every
  line that touches redis-py's or asyncio's machinery (and ``sockets`` to close them), and
  ``replication`` to send a write with ``WAIT 1`` when its primary has a replica.
- ``layout``: where a namespace's data lives: every key name and partition fact, spelled once
  and formatted into the Lua (``lua_common``, ``lua``).
- ``backend``: ``RedisBackend``, the operations of the storage seam over a connection
  (``bulk`` for the paged clears and listings).
- ``search``: ``RedisSearchBackend``, the backend with a ``RedisIndex`` composed into it, which
  searches with the Query Engine (``query_engine``) or this process's replicas (``replica``,
  ``replicas``).

Users never import from here: ``backend_from_url`` (``stores._factory``) builds the backends.
"""
