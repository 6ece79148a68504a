"""Cache LLM responses: identical prompts are answered once; concurrent duplicates share a call."""

import asyncio

from tta_dev_primitives import CachePrimitive, WorkflowContext

calls = 0


async def expensive_llm(prompt: str, ctx: WorkflowContext) -> str:
    global calls
    calls += 1
    await asyncio.sleep(0.05)  # pretend network latency
    return f"answer to {prompt}"


cached = CachePrimitive(
    expensive_llm,
    cache_key_fn=lambda prompt, ctx: " ".join(prompt.lower().split()),
    ttl_seconds=600,
    # backend="redis://localhost:6379", namespace="tta:cache:answers" shares the cache between
    # processes, with fallback (each cache on Redis needs a namespace of its own).
)


async def main() -> None:
    prompts = ["What is Redis?", "what is  redis?", "What is Redis?", "What is a primitive?"]
    answers = await asyncio.gather(*(cached.execute(p, WorkflowContext()) for p in prompts))
    for prompt, reply in zip(prompts, answers, strict=True):
        print(f"{prompt!r:26} -> {reply}")
    print(f"model calls: {calls}, cache hits: {cached.hits}, misses: {cached.misses}")


if __name__ == "__main__":
    asyncio.run(main())
