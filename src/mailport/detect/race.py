"""The deadline race of one investigation: the network mechanisms run concurrently, each under
a per-step deadline, all under the overall one; the wait ends as soon as nothing still running
could beat the best answer so far (a lower rank is more trusted). Only an IMAP server settles
the race: an answer with POP3 or SMTP alone waits for the other steps, which may still find
IMAP (POP3 is offered only when none is found).

Only timing and ranks live here; what each mechanism asks is :mod:`mailport.detect.mechanisms`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field

import httpx

from mailport.detect.dns import LookupFailed
from mailport.detect.model import Candidate

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """What the steps of one investigation learn besides candidates."""

    exists: bool | None = None  # False: the domain does not exist (NXDOMAIN)
    null_mx: bool = False
    timed_out_ranks: list[int] = field(default_factory=list)


def settled_rank(found: Iterable[Candidate]) -> int | None:
    """The rank of the best candidate nothing less trusted can replace: the best with IMAP."""
    return min((c.rank for c in found if c.imap), default=None)


@dataclass(frozen=True, slots=True)
class Step:
    """One mechanism's run: its rank, a name for the logs, and the work."""

    rank: int
    name: str
    work: Awaitable[list[Candidate]]


async def _run(step: Step, state: RunState, timeout: float) -> list[Candidate]:
    """One step under its deadline; a failure is logged and finds nothing."""
    try:
        async with asyncio.timeout(timeout):
            return await step.work
    except TimeoutError:
        log.info("detect: %s timed out", step.name)
        state.timed_out_ranks.append(step.rank)
    except LookupFailed as exc:
        log.info("detect: %s failed: %s", step.name, exc)
        state.timed_out_ranks.append(step.rank)
    except (httpx.HTTPError, OSError) as exc:
        log.info("detect: %s failed: %s", step.name, type(exc).__name__)
    return []


async def race(
    steps: Iterable[Step], state: RunState, *, deadline: float, step_timeout: float
) -> tuple[list[Candidate], bool]:
    """Run ``steps`` until the best answer is final or ``deadline`` (loop time) passes; returns
    what was found and whether the deadline cut the wait short. Unfinished steps are cancelled."""
    loop = asyncio.get_running_loop()
    ranks = {asyncio.ensure_future(_run(step, state, step_timeout)): step.rank for step in steps}
    found: list[Candidate] = []
    pending = set(ranks)
    timed_out = False
    try:
        while pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                timed_out = True
                break
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                found.extend(task.result())
            if state.exists is False:
                break  # NXDOMAIN: nothing else can exist
            best = settled_rank(found)
            if best is not None and all(ranks[t] > best for t in pending):
                break
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    return found, timed_out
