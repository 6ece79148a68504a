"""semantic-memory.md, "What is embedded": the searched strings, one per line, cut at 8,000
characters (``vector_text`` as given, each text cut alike), and metadata never."""

from __future__ import annotations

from tta_dev_primitives import MemoryPrimitive


def recorder() -> tuple[list[str], object]:
    seen: list[str] = []

    def embed(texts: list[str]) -> list[list[float]]:
        seen.extend(texts)
        return [[1.0, float(len(t) % 5) + 1.0] for t in texts]

    return seen, embed


async def test_the_searched_strings_are_embedded_one_per_line_cut_at_8000() -> None:
    seen, embed = recorder()
    memory = MemoryPrimitive(embed=embed, dims=2)
    body = "".join(chr(ord("a") + i % 26) for i in range(20_000))
    value = {"role": "assistant", "title": "Trip notes", "body": body, "user_id": "u1"}
    await memory.add("u1:s1:1", value)
    assert seen == [f"Trip notes\n{body}"[:8000]]  # role and user_id are metadata

    seen.clear()
    await memory.add("u1:s1:2", {"content": "x"}, vector_text=["short", "y" * 9_000])
    assert seen == ["short", "y" * 8000]

    seen.clear()
    await memory.search("z" * 12_000, mode="semantic")
    assert seen == ["z" * 8000]  # a pasted query reaches the model cut alike
    await memory.aclose()


async def test_text_fields_choose_what_is_embedded() -> None:
    seen, embed = recorder()
    memory = MemoryPrimitive(embed=embed, dims=2, text_fields=("content",))
    await memory.add("u1:s1:1", {"content": "peanuts", "note": "not this"})
    assert seen == ["peanuts"]
    await memory.aclose()
