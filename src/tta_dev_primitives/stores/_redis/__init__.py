"""The Redis backend, as a private package: connection, key layout, operations, search."""
