"""The test servers themselves: a port another process takes between choosing it and binding
it (the suite's own client sockets draw from the kernel's ephemeral ports) costs a retry on
another port, not a failed test."""

from __future__ import annotations

import socket

import pytest

from redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis


def test_a_server_whose_port_is_taken_before_it_binds_starts_on_another(
    redis_binary: str,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken, free_port()])
        server = RedisServer(redis_binary, pick_port=lambda: next(ports))
        assert server.port == taken
        server.start()
        try:
            assert server.port != taken
            assert server.ping()
            server.restart()  # a restart keeps the port it started on
            assert server.ping()
        finally:
            server.stop()


def test_a_server_whose_port_another_redis_holds_starts_on_another(redis_binary: str) -> None:
    """Another suite's redis-server on the chosen port answers PING before ours exits with
    'Address already in use': start() must not take it for ours."""
    foreign = RedisServer(redis_binary).start()
    try:
        ports = iter([foreign.port, free_port()])
        server = RedisServer(redis_binary, pick_port=lambda: next(ports))
        server.start()
        try:
            assert server.port != foreign.port
            assert server.proc is not None
            assert server.proc.poll() is None
        finally:
            server.stop()
    finally:
        foreign.stop()
