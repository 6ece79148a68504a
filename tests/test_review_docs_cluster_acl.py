"""production.md's ACL on a Redis Cluster: "On a cluster, the client also needs slot discovery
(...); that combination is not yet covered by a test". Granted exactly what the page says, on
every node of a cluster whose masters have replicas, every operation runs."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync

from conftest import IN_CI, documented_acl
from redis_server import LocalCluster
from test_review_docs_cluster_wait import replicas_appear, waits_served
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import BackendRefusedError

pytestmark = pytest.mark.redis

DOCS = Path(__file__).resolve().parent.parent / "docs" / "production.md"


def cluster_rights() -> list[str]:
    """The rights production.md adds for a cluster: every ``+...`` in its sentence."""
    text = " ".join(DOCS.read_text().split())
    found = re.search(r"On a cluster, the client also needs (.*?)\.", text)
    assert found is not None, "production.md no longer says what a cluster needs"
    return re.findall(r"\+[\w|]+", found.group(1))


@pytest.fixture
def cluster(redis_binary: str) -> Iterator[LocalCluster]:
    made = LocalCluster(redis_binary, masters=3, replicas=1).start()
    rules = ["on", ">tta-secret", "resetkeys", "~tta:memory:*", "-@all", *documented_acl(),
             *cluster_rights()]  # fmt: skip
    for node in made.nodes:  # ACL users are per node
        admin = redis_sync.Redis(port=node.port)
        admin.execute_command("ACL", "SETUSER", "tta", *rules)
        admin.close()
    yield made
    made.stop()


async def test_the_documented_acl_runs_every_operation_on_a_cluster(
    cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://tta:tta-secret@127.0.0.1:{cluster.nodes[0].port}/0"
    memory = MemoryPrimitive(url, namespace="tta:memory", redis_timeout=5)
    caplog.set_level(logging.WARNING, logger="tta_dev_primitives.memory")
    try:
        await memory.add("u1:s1:a", {"content": "least privilege"}, ttl=60)
        await memory.add("u1:s2:b", {"content": "privilege two"})
        assert await memory.get("u1:s1:a") == {"content": "least privilege"}
        assert len(await memory.search("privilege")) == 2
        assert len(await memory.search("privilege", scope="u1:s1")) == 1
        assert await memory.delete("u1:s2:b") is True
        assert await memory.size() == 1
        assert [key async for key, _, _ in memory.items()] == ["u1:s1:a"]
        assert await memory.touch("u1:s1:a", 600) is True
        assert [k for k, _ in (await memory.list_memories("u1")).items] == ["u1:s1:a"]
        await memory.add("u2:s1:a", {"content": "another user"})
        assert await memory.forget("u2") == 1
        assert memory.using_redis
        assert waits_served(cluster) > 0  # the writes waited for replicas, as this user
        assert "refused" not in caplog.text  # ROLE answered: it is in the documented rights
        other = MemoryPrimitive(url, namespace="tta:memory")
        assert await other.search("privilege") == [{"content": "least privilege"}]
        await other.aclose()
        await memory.clear()
        assert await memory.size() == 0
    finally:
        await memory.aclose()


async def test_a_user_without_wait_is_told_the_write_reached_the_master(
    redis_binary: str,
) -> None:
    """Refused WAIT after a cluster write: the error says the master has the write (it does)
    and how to grant the right; it used to say that nothing was stored."""
    cluster = LocalCluster(redis_binary, masters=3, replicas=1).start()
    try:
        rules = ["on", ">tta-secret", "resetkeys", "~tta:memory:*", "-@all",
                 *(r for r in [*documented_acl(), *cluster_rights()] if r != "+wait")]  # fmt: skip
        for node in cluster.nodes:
            admin = redis_sync.Redis(port=node.port)
            admin.execute_command("ACL", "SETUSER", "tta", *rules)
            admin.close()
        await replicas_appear(cluster)
        url = f"redis://tta:tta-secret@127.0.0.1:{cluster.nodes[0].port}/0"
        memory = MemoryPrimitive(url, namespace="tta:memory", redis_timeout=5)
        with pytest.raises(BackendRefusedError) as refused:
            await memory.add("u1:s1:a", {"content": "least privilege"})
        message = str(refused.value)
        assert "+wait" in message
        assert "reached the master" in message
        assert "nothing was stored" not in message
        await memory.aclose()
        admin_url = f"redis://127.0.0.1:{cluster.nodes[0].port}/0"
        reader = MemoryPrimitive(admin_url, namespace="tta:memory")
        assert await reader.get("u1:s1:a") == {"content": "least privilege"}
        await reader.aclose()
    finally:
        cluster.stop()


@pytest.mark.redis
async def test_the_documented_engine_acl_runs_on_a_query_engine_cluster() -> None:
    """The Query Engine's rights beside the cluster's, on every node of a cluster whose nodes
    have RediSearch: keyword, filtered and semantic searches answer in the engine."""
    from query_engine_server import start_redis_stack_cluster

    started = start_redis_stack_cluster()
    if isinstance(started, str):
        if IN_CI:  # (as the redis_query_engine_cluster fixture: tested on every CI run)
            pytest.fail(f"CI=true: no Redis Cluster with the Query Engine: {started}")
        pytest.skip(started)
    engine_cluster, _ = started
    rules = ["on", ">tta-secret", "resetkeys", "~tta:memory:*", "-@all",
             *documented_acl(engine=True), *cluster_rights()]  # fmt: skip
    try:
        for node in engine_cluster.nodes:
            admin = redis_sync.Redis(port=node.port)
            admin.execute_command("ACL", "SETUSER", "tta", *rules)
            admin.close()

        def embed(texts: list[str]) -> list[list[float]]:
            return [[1.0, float(len(t) % 5) + 1.0] for t in texts]

        url = f"redis://tta:tta-secret@127.0.0.1:{engine_cluster.nodes[0].port}/0"
        memory = MemoryPrimitive(url, namespace="tta:memory", search_engine="redis",
                                 redis_timeout=5, embed=embed, dims=2)  # fmt: skip
        try:
            await memory.add("u1:s1:a", {"content": "least privilege", "role": "user"})
            await memory.add("u1:s2:b", {"content": "privilege two"})
            assert len(await memory.search("privilege", mode="keyword")) == 2
            found = await memory.search("privilege", scope="u1", filter={"role": "user"})
            assert found == [{"content": "least privilege", "role": "user"}]
            assert len(await memory.search("privilege", mode="semantic")) == 2
            assert memory.get_backend_info()["search_engine"] == "redis"
            assert await memory.touch("u1:s1:a", 600) is True
            assert await memory.forget("u1") == 2
            assert memory.using_redis
        finally:
            await memory.clear()
            await memory.aclose()
    finally:
        engine_cluster.stop()
