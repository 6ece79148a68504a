"""README: "Give MemoryPrimitive a redis://, rediss:// or unix:// URL". A unix socket (with a
password and a database number) and TLS serve, fall back and replay like a plain TCP address."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
import redis.asyncio as aioredis

from conftest import fast_recovery, replayed
from redis_server import RedisServer, free_port
from tta_dev_primitives import MemoryPrimitive


async def through_an_outage(memory: MemoryPrimitive, server: RedisServer, first: str) -> None:
    """``first`` added while Redis serves (the URL's password never shown), one memory written
    while the server is down, then the replay once it is back."""
    await memory.add("u1:s1:a", {"content": first})
    assert memory.using_redis
    assert "QZX" not in str(memory.get_backend_info())
    server.kill()
    await memory.add("u1:s1:b", {"content": "written during the outage"})
    assert not memory.using_redis
    server.start()
    await replayed(memory, within=15)


@pytest.mark.redis
async def test_a_unix_socket_url_serves_falls_back_and_replays(redis_binary: str) -> None:
    sock = Path(tempfile.mkdtemp(prefix="tta-sock-")) / "redis.sock"
    server = RedisServer(
        redis_binary,
        password="pw:QZX",
        appendonly=True,  # the write before the kill is still there after it
        extra=("--unixsocket", str(sock), "--unixsocketperm", "700"),
    ).start()
    try:
        url = f"unix://:pw%3AQZX@{sock}?db=1"
        memory = fast_recovery(url)
        await through_an_outage(memory, server, "hello over a socket")
        other = MemoryPrimitive(url, namespace=memory.namespace)
        assert await other.get("u1:s1:b") == {"content": "written during the outage"}
        assert [m["content"] for m in await other.search("socket outage", limit=5)] == [
            "written during the outage",
            "hello over a socket",
        ]
        await other.aclose()
        for db, holds in ((1, True), (0, False)):  # the URL's database, not the default
            raw = aioredis.Redis(unix_socket_path=str(sock), password="pw:QZX", db=db)
            found = [k async for k in raw.scan_iter(match=f"{memory.namespace}:*")]
            assert bool(found) is holds, db
            await raw.aclose()
        await memory.clear()
        await memory.aclose()
    finally:
        server.stop()
        sock.unlink(missing_ok=True)


def make_certificate(where: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with openssl."""
    cert, key = where / "server.crt", where / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.redis
async def test_a_rediss_url_serves_over_tls_and_replays_an_outage(redis_binary: str) -> None:
    """production.md: rediss://user:password@host/0 for TLS; the certificate is checked
    against the CA the URL names, and the password is never shown."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    where = Path(tempfile.mkdtemp(prefix="tta-tls-"))
    cert, key = make_certificate(where)
    tls_port = free_port()
    tls = ("--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
           "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no")  # fmt: skip
    server = RedisServer(redis_binary, password="QZXtls", appendonly=True, extra=tls).start()
    try:
        url = f"rediss://:QZXtls@127.0.0.1:{tls_port}/0?ssl_ca_certs={quote(str(cert))}"
        memory = fast_recovery(url)
        await through_an_outage(memory, server, "hello over tls")
        other = MemoryPrimitive(url, namespace=memory.namespace)
        assert await other.get("u1:s1:a") == {"content": "hello over tls"}
        assert await other.get("u1:s1:b") == {"content": "written during the outage"}
        await other.aclose()
        # Not plain text: the TLS port refuses a plain client (served in-process instead).
        plain = MemoryPrimitive(f"redis://:QZXtls@127.0.0.1:{tls_port}/0", redis_timeout=0.5)
        assert await plain.get("u1:s1:a") is None
        assert not plain.using_redis
        await plain.aclose()
        await memory.clear()
        await memory.aclose()
    finally:
        server.stop()
        shutil.rmtree(where, ignore_errors=True)
