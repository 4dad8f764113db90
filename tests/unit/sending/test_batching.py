"""Group commit (:class:`mailport.sending.batching.Batched`): calls that arrive while a batch is
being written go together in the next one, each caller gets its own result or the error."""

from __future__ import annotations

import asyncio

import pytest

from mailport.sending.batching import Batched


async def test_calls_waiting_during_a_flush_share_the_next_one() -> None:
    flushes: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushes.append(list(items))
        await asyncio.sleep(0.01)  # the "transaction": more callers arrive meanwhile
        return [i * 10 for i in items]

    batched: Batched[int, int] = Batched(flush)
    results = await asyncio.gather(*(batched(i) for i in range(6)))
    assert results == [0, 10, 20, 30, 40, 50]
    assert [i for f in flushes for i in f] == list(range(6))  # each item once, in order
    assert len(flushes) < 6  # grouped: fewer flushes than calls


async def test_a_failed_flush_fails_its_callers_and_the_next_batch_runs() -> None:
    calls = 0

    async def flush(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database gone")
        return [f"ok {i}" for i in items]

    batched: Batched[str, str] = Batched(flush)
    with pytest.raises(RuntimeError, match="database gone"):
        await batched("a")
    assert await batched("b") == "ok b"
