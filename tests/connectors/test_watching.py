"""Contract: ``watch`` yields a change soon after new mail (push) and at once after ``wake``."""

from __future__ import annotations

import asyncio

from mailport.connectors.base import ChangeKind, Feature
from tests.connectors.conftest import SCOPE, Harness
from tests.integration.sync.conftest import make_message


async def test_watch_yields_after_new_mail_when_pushing_and_after_a_wake_always(harness: Harness) -> None:
    await harness.connector.open(SCOPE)
    changes = aiter(harness.connector.watch(interval=60))
    try:
        if harness.connector.supports(Feature.PUSH):
            waiting = asyncio.ensure_future(anext(changes))
            await asyncio.sleep(0.3)  # listening (IMAP: in IDLE)
            await harness.deliver_raw(make_message("pushed"))
            change = await asyncio.wait_for(waiting, 5)
            assert change.kind is ChangeKind.NEW_MAIL
        waiting = asyncio.ensure_future(anext(changes))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # nothing happened: no change before the 60 s interval
        harness.connector.wake()
        change = await asyncio.wait_for(waiting, 5)
        assert change.kind is ChangeKind.TICK
    finally:
        await changes.aclose()  # type: ignore[attr-defined]
