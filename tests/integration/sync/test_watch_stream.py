"""``async for event in mailport.watch(...)``: events as they are appended, resumable by seq,
acknowledged events accepted; and ``mailport watch`` refuses an unknown mailbox in one line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import mailport
from mailport.events import Event
from mailport.sync import Orchestrator
from tests.integration.sync.conftest import Bed, make_message


async def test_watch_yields_new_events_and_acknowledges_them(bed: Bed, running: Orchestrator) -> None:
    mailbox = await bed.add_mailbox()
    running.poke()
    seen: list[Event] = []

    async def consume() -> None:
        async for event in mailport.watch(
            services=bed.services, mailbox_id=mailbox.id, types=["message.received"], acknowledge=True
        ):
            seen.append(event)
            if len(seen) == 2:
                return

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    for i in range(2):
        await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message(f"streamed {i}"))
    await asyncio.wait_for(consumer, 15)
    assert [e.payload["subject"] for e in seen] == ["streamed 0", "streamed 1"]
    first = await bed.services.events.get(seen[0].id)
    assert first is not None and first.accepted_at is not None  # the loop body finished with it
    replay: list[Event] = []
    async for event in mailport.watch(services=bed.services, mailbox_id=mailbox.id, after=seen[0].seq - 1):
        replay.append(event)
        if event.seq == seen[1].seq:
            break
    assert seen[0].id in [e.id for e in replay]


def test_the_watch_command_refuses_an_unknown_mailbox(tmp_path: Path) -> None:
    env = {"MAILPORT_DATA_DIR": str(tmp_path / "var"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "mailport", "watch", "mbx_nope"], env=env, capture_output=True, timeout=60
    )
    assert result.returncode == 1
    last = result.stderr.decode().strip().splitlines()[-1]  # (after the generated-key notice)
    assert last.startswith("error [not_found]: no mailbox 'mbx_nope' — ")
    assert b"Traceback" not in result.stderr
