"""``async for event in mailport.watch(...)``: events as they are appended, resumable by seq,
acknowledged events accepted; and ``mailport watch`` refuses an unknown mailbox in one line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import mailport
from mailport.events import Event, NewEvent, last_seq
from mailport.sync import Orchestrator
from tests.integration.sync.conftest import Bed, make_message, wait_for
from tests.mailstack.dovecot import Dovecot


def _one_seen(seen: list[Event]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(seen) >= 1

    return check


async def test_watch_yields_new_events_and_acknowledges_them(bed: Bed, running: Orchestrator) -> None:
    mailbox = await bed.add_mailbox()
    running.poke()
    seen: list[Event] = []
    async with bed.services.database.connect() as conn:
        now = await last_seq(conn)  # where the consumer starts, whenever its task first runs

    async def consume() -> None:
        async for event in mailport.watch(
            services=bed.services,
            mailbox_id=mailbox.id,
            types=["message.received"],
            acknowledge=True,
            after=now,
        ):
            seen.append(event)
            if len(seen) == 2:
                return

    consumer = asyncio.create_task(consume())
    # one after the other: two files waiting in a maildir's new/ at once get their UIDs in
    # directory order, which need not be the order they were written in
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("streamed 0"))
    await wait_for(_one_seen(seen), timeout=15)
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("streamed 1"))
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


async def test_watch_starts_after_the_events_already_in_the_log(bed: Bed) -> None:
    """Without ``after`` the stream starts from now: an event already in the log is not yielded,
    one appended once the stream waits is. (Events keep being appended until the first one
    arrives, so the test does not depend on when the stream took its position.)"""
    mailbox = await bed.add_mailbox()

    async def received(subject: str) -> None:
        await bed.services.events.append(
            NewEvent(bed.tenant_id, mailbox.id, "message.received", {"subject": subject}, subject)
        )

    await received("already there")
    stream = mailport.watch(services=bed.services, mailbox_id=mailbox.id, types=["message.received"])
    first = asyncio.ensure_future(anext(stream))
    try:
        for n in range(100):
            done, _ = await asyncio.wait({first}, timeout=0.1)
            if done:
                break
            await received(f"new {n}")
        event = await asyncio.wait_for(first, 10)
        assert event.payload["subject"].startswith("new ")
    finally:
        if not first.done():
            first.cancel()
        else:
            await stream.aclose()


def test_the_watch_command_refuses_an_unknown_mailbox(tmp_path: Path) -> None:
    env = {"MAILPORT_DATA_DIR": str(tmp_path / "var"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "mailport", "watch", "mbx_nope"], env=env, capture_output=True, timeout=60
    )
    assert result.returncode == 1
    last = result.stderr.decode().strip().splitlines()[-1]  # (after the generated-key notice)
    assert last.startswith("error [not_found]: no mailbox 'mbx_nope' — ")
    assert b"Traceback" not in result.stderr


# A library user's script: leave ``async for event in mailport.watch(...)`` with ``break`` and let
# ``asyncio.run`` end. Seeded in a first ``asyncio.run`` (a tenant and a mailbox on the bed).
BREAK_SCRIPT = """
import asyncio, sys
import mailport
from mailport.bootstrap import build
from mailport.config import Settings
from mailport.crypto import Secret
from mailport.events import NewEvent
from mailport.mailboxes.models import AuthMethod, NewMailbox, Security, ServerSettings

user, password, port, ingest = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "ingest"

async def seed():
    services = await build(Settings())
    tenant, _ = await services.tenants.create_tenant("lib")
    mailbox = await services.mailboxes.create(tenant.id, NewMailbox(
        email=user, auth_method=AuthMethod.PASSWORD, password=Secret(password),
        imap=ServerSettings("127.0.0.1", port, Security.NONE)))
    if not ingest:  # a reader only: the event is already in the log
        await services.events.append(NewEvent(tenant.id, mailbox.id, "message.received",
                                              {"subject": "seeded"}, "seeded"))
    await services.aclose()

async def main():
    async for event in mailport.watch(after=0, ingest=ingest, types=["message.received"]):
        print("got", event.payload["subject"], flush=True)
        break
    print("left the loop", flush=True)

asyncio.run(seed())
asyncio.run(main())
"""


@pytest.mark.parametrize("ingest", ["ingest", "read-only"])
def test_breaking_out_of_watch_closes_it_quietly(
    tmp_path: Path, dovecot: Dovecot, password_user: tuple[str, str], ingest: str
) -> None:
    user, password = password_user
    dovecot.deliver(user, make_message("break me"))
    env = {
        "MAILPORT_DATA_DIR": str(tmp_path / "var"),
        "MAILPORT_ALLOW_PRIVATE_HOSTS": "true",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "default::ResourceWarning",  # unclosed sockets and files: said, not hidden
            "-c",
            BREAK_SCRIPT,
            user,
            password,
            str(dovecot.imap_port),
            ingest,
        ],
        env=env,
        capture_output=True,
        timeout=90,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    subject = "break me" if ingest == "ingest" else "seeded"
    assert result.stdout.splitlines() == [f"got {subject}", "left the loop"]
    noise = [
        line
        for line in result.stderr.splitlines()
        if not line.startswith(("MAILPORT_SECRET_KEYS", "!!! MAILPORT_SECRET_KEYS"))
    ]
    assert noise == [], result.stderr  # no traceback, no "Task exception was never retrieved" …
