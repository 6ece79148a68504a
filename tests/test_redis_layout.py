"""The Redis key layout: each name spelled once, in ``layout``, and shared with the Lua scripts."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from tta_dev_primitives.stores._redis import layout, lua
from tta_dev_primitives.stores._redis.layout import CLUSTER_PARTITIONS, Layout, partition_key

SCRIPTS = ["PUT", "DELETE", "SIZE", "CHANGES", "CLEAR_MARK", "CLEAR_PAGE", "INDEX_PAGE"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_name_keys_only_through_the_layout(name: str) -> None:
    """A script builds every key name from the layout's Lua locals, never a literal suffix."""
    source = getattr(lua, name)
    assert not re.search(r"base \.\. '", source)
    for constant in ("FACTS", "VALUE", "LIVE", "TOMBS", "DOC", "FACT_SEQ", "FACT_ENGINE_DONE"):
        assert f"local {constant} = '{getattr(layout, constant)}'\n" in source


def test_names_are_plain_enough_to_be_lua_literals() -> None:
    """Every layout name is ASCII letters and ``:`` only, so a quoted Lua literal holds it."""
    names = [getattr(layout, n) for n in layout.__all__ if n.isupper()]
    texts = [n for n in names if isinstance(n, str)] + [
        *layout.OWN_TYPES,
        *layout.OWN_TYPES.values(),
    ]
    assert texts
    assert all(re.fullmatch(r"[a-z:]+", text) for text in texts)


def test_a_session_shares_one_partition_and_users_spread() -> None:
    """Keys of one ``user:session`` land in one partition; many sessions use many partitions."""
    names = Layout("ns", CLUSTER_PARTITIONS)
    assert partition_key("u1:s1:turn9") == "u1:s1"
    assert partition_key("u1") == "u1"
    assert names.base("u1:s1:1") == names.base("u1:s1:2") == names.base("u1:s1")
    assert len({names.base(f"u{i}:s1:1") for i in range(500)}) == CLUSTER_PARTITIONS
    assert names.value("u1:s1:1") == names.base("u1:s1:1") + "v:u1:s1:1"


def test_repartitioning_gives_holders_a_new_list_of_bases() -> None:
    """A cluster's repartition replaces ``bases`` (replicas built on the old list notice)."""
    names = Layout("ns")
    before = names.bases
    assert before == ["ns:{ns#0}:"]
    names.repartition(4)
    assert names.bases is not before
    assert names.bases == [f"ns:{{ns#{p}}}:" for p in range(4)]
    assert Layout.partition_of_name(b"ns:{ns#3}:v:a}:b") == b"ns:{ns#3}"


@pytest.mark.parametrize("key", ["u1:s1:1", "a}:f:b", "k:fv:2:x", "plain"])
def test_a_document_id_gives_back_its_memory_key(key: str) -> None:
    """Query Engine document ids (first and further vectors) map back to the memory's key."""
    base = Layout("ns:f:", 2).base(key)
    first, further = (prefix for prefix in Layout.document_prefixes([base]))
    assert Layout.key_of_document(first + key) == key
    assert Layout.key_of_document(further + "3:" + key) == key


def test_own_keys_name_each_partitions_typed_keys() -> None:
    """The keys a WRONGTYPE warning checks are each partition's facts, versions and zsets."""
    names = Layout("ns", 2)
    own = names.own_keys()
    assert own["ns:{ns#1}:n"] == "hash"
    assert own["ns:{ns#0}:r"] == "zset"
    assert len(own) == 2 * 5


def test_a_master_owning_any_single_slot_has_an_index_name() -> None:
    """A reshard onto a new master gives it one slot first. 100,000 candidate names left 112
    of the 16,384 slots without one, so a master owning only such a slot failed every search
    ("found no index name whose slot cluster node ... owns"; a flaky cluster test). Every
    slot now has a name, found the way every process finds it (``master_index``)."""
    from redis.crc import key_slot

    from tta_dev_primitives.stores._redis.shards import MAX_TAG_TRIES, canonical_index, master_index

    slots = {key_slot(Layout.master_index_name("ns", n).encode()) for n in range(MAX_TAG_TRIES)}
    assert len(slots) == 16384
    last = key_slot(Layout.master_index_name("ns", MAX_TAG_TRIES - 1).encode())

    class OneSlotMap:  # a client's slot map in which one master owns only ``last``
        def get_node_from_key(self, name: str) -> Any:
            return node if key_slot(name.encode()) == last else other

    node, other = SimpleNamespace(name="new:1"), SimpleNamespace(name="old:2")
    name = master_index(OneSlotMap(), "any namespace", node)
    assert name == Layout.master_index_name("any namespace", MAX_TAG_TRIES - 1)
    assert canonical_index("any namespace", [(last, last)]) == name
