"""A worker paused past its lease (SIGSTOP: what a long GC pause, a frozen VM or a network
partition looks like to the others) writes nothing once it runs again: real PostgreSQL, real
Dovecot, two ``mailport worker`` processes with 4-second leases.

The worker holding the mailbox with an after-processing action (``mark_read``) is found in the
``leases`` table (whichever it is: today the first worker to start takes every lease, with the
fleet's assignment they are spread), stopped right after it ingested a message whose event is
not yet accepted (its action still to do), and mail arrives meanwhile. Another worker takes
the lease over and delivers it, then the stopped one continues (SIGCONT) and more mail
arrives. Every message is in the events table exactly once, every action done once, cursors
never move backwards, the lease's fencing token never goes back, and the resumed worker says
in its log that its lease moved on (a refused write, or the renewal that found it lost) and
logs no traceback.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailport.bootstrap import Services, build
from mailport.crypto import Secret
from mailport.delivery.schemas import WebhookCreate
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from mailport.store.tables import leases, mailbox_cursors, pending_actions
from tests.fixtures.api import make_settings
from tests.fixtures.process import clean_environment, start_mailport
from tests.fixtures.webhook_receiver import MakeReceiver
from tests.integration.sync.conftest import all_events, make_message, wait_for
from tests.mailstack.dovecot import Dovecot

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgres"], indirect=True)]

LEASE_SECONDS = 4
WORKERS = 2


@contextmanager
def workers(
    tmp_path: Path, environment: dict[str, str]
) -> Iterator[list[tuple[subprocess.Popen[bytes], Path]]]:
    started: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for n in range(WORKERS):
            log_path = tmp_path / f"worker-{n}.log"
            started.append(
                (start_mailport("worker", cwd=tmp_path, env=environment, log_path=log_path), log_path)
            )
        yield started
    finally:
        for proc, _ in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc, _ in started:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


class Watch:
    """Samples cursors and watcher leases every 50 ms; remembers any step backwards."""

    def __init__(self, services: Services, mailbox_ids: list[str]) -> None:
        self.services = services
        self.mailbox_ids = mailbox_ids
        self.cursors: dict[tuple[str, str], int] = {}
        self.tokens: dict[str, int] = {}
        self.backwards: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def sample(self) -> dict[str, Any]:
        async with self.services.database.connect() as conn:
            rows = await conn.execute(
                select(mailbox_cursors).where(mailbox_cursors.c.mailbox_id.in_(self.mailbox_ids))
            )
            for row in rows:
                key, position = (row.mailbox_id, row.scope), int(row.position)
                if position < self.cursors.get(key, 0):
                    self.backwards.append(f"cursor {key}: {self.cursors[key]} -> {position}")
                self.cursors[key] = max(position, self.cursors.get(key, 0))
            names = [f"watcher:{m}" for m in self.mailbox_ids]
            held = {
                row.name: row for row in await conn.execute(select(leases).where(leases.c.name.in_(names)))
            }
        for name, row in held.items():
            if int(row.token) < self.tokens.get(name, 0):
                self.backwards.append(f"lease {name}: token {self.tokens[name]} -> {row.token}")
            self.tokens[name] = max(int(row.token), self.tokens.get(name, 0))
        return held

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


async def holder_of(watch: Watch, mailbox_id: str) -> tuple[str, int]:
    async def held() -> tuple[str, int] | None:
        row = (await watch.sample()).get(f"watcher:{mailbox_id}")
        return None if row is None or row.holder is None else (row.holder, int(row.token))

    found: tuple[str, int] = await wait_for(held, timeout=30, interval=0.1)
    return found


async def settled_holder_of(watch: Watch, mailbox_id: str, *, quiet: float = 2.0) -> tuple[str, int]:
    """The holder once the same tenure has held the mailbox for ``quiet`` seconds: right after a
    worker rejoins, the assignment may be handing the mailbox back, and stopping a worker whose
    handover is in flight would test nothing (it gives the lease up cleanly)."""
    deadline = time.monotonic() + 30
    current = await holder_of(watch, mailbox_id)
    since = time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"the holder of {mailbox_id} never settled"
        await asyncio.sleep(0.2)
        now = await holder_of(watch, mailbox_id)
        if now != current:
            current, since = now, time.monotonic()
    return current


async def test_a_worker_stopped_past_its_lease_writes_nothing_when_it_resumes(
    tmp_path: Path, fresh_database_url: str, secret_key: str, dovecot: Dovecot, make_receiver: MakeReceiver
) -> None:
    receiver = make_receiver()
    settings = make_settings(fresh_database_url, tmp_path / "var", secret_key).model_copy(
        update={"allow_private_hosts": True}
    )
    services = await build(settings, migrate=True)
    plain_user, plain_password = dovecot.dyn_user(f"p{uuid.uuid4().hex[:10]}")
    acting_user, acting_password = dovecot.dyn_user(f"a{uuid.uuid4().hex[:10]}")
    tenant, _key = await services.tenants.create_tenant("sigstop")
    await services.webhooks.create(tenant.id, WebhookCreate(url=receiver.url))

    async def mailbox(user: str, password: str, action: str) -> str:
        made = await services.mailboxes.create(
            tenant.id,
            NewMailbox(
                email=user,
                auth_method=AuthMethod.PASSWORD,
                imap=ServerSettings("127.0.0.1", dovecot.imap_port, Security.NONE),
                password=Secret(password),
                settings=ProcessingSettings(check_interval=60, after_processing=action),
            ),
        )
        return made.id

    plain = await mailbox(plain_user, plain_password, "none")
    acting = await mailbox(acting_user, acting_password, "mark_read")
    users = {plain: plain_user, acting: acting_user}
    delivered: dict[str, list[str]] = {plain: [], acting: []}

    async def deliver(mailbox_id: str, subject: str) -> None:
        delivered[mailbox_id].append(subject)
        await asyncio.to_thread(dovecot.deliver, users[mailbox_id], make_message(subject))

    async def subjects(mailbox_id: str) -> list[str]:
        found = await all_events(services, mailbox_id=mailbox_id, type="message.received")
        return sorted(e.payload["subject"] for e in found)

    async def all_in(mailbox_id: str) -> bool:
        return set(await subjects(mailbox_id)) >= set(delivered[mailbox_id])

    async def actions_done() -> bool:
        async with services.database.connect() as conn:
            rows = list(
                await conn.execute(select(pending_actions).where(pending_actions.c.mailbox_id == acting))
            )
        return len(rows) == len(delivered[acting]) and all(r.state == "done" for r in rows)

    async def state() -> str:
        async with services.database.connect() as conn:
            actions = list(
                await conn.execute(select(pending_actions).where(pending_actions.c.mailbox_id == acting))
            )
            held = list(await conn.execute(select(leases)))
        found = await all_events(services, mailbox_id=acting)
        return "\n".join(
            [f"time {time.monotonic():.1f}", *map(str, actions), *map(str, held)]
            + [f"{e.id} {e.type} {e.payload.get('subject')} accepted={e.accepted_at}" for e in found]
        )

    environment = clean_environment()
    environment.update(
        MAILPORT_DATABASE_URL=fresh_database_url,
        MAILPORT_DATA_DIR=str(tmp_path / "var"),
        MAILPORT_SECRET_KEYS=secret_key,
        MAILPORT_ALLOW_PRIVATE_HOSTS="true",
        MAILPORT_LOG_LEVEL="INFO",
        MAILPORT_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    watch = Watch(services, [plain, acting])
    try:
        with workers(tmp_path, environment) as procs:
            by_pid = {proc.pid: (proc, log_path) for proc, log_path in procs}

            def logs() -> str:
                return "\n".join(f"--- {p.name}\n{p.read_text()}" for _, p in procs)

            watch.start()
            timeline = {"start": time.monotonic()}
            # 1. everyone watching: mail arrives, is delivered and marked read
            await holder_of(watch, plain)
            await holder_of(watch, acting)
            await deliver(plain, "before 1")
            await deliver(acting, "before 2")
            await wait_for(lambda: all_in(plain), timeout=30)
            await wait_for(lambda: all_in(acting), timeout=30)
            await wait_for(actions_done, timeout=30)

            async def pause(label: str, *, resume_at_take_over: bool) -> tuple[int, int, str]:
                """Stop the acting mailbox's holder; returns the stale and the new token and
                what the resumed worker logged after it continued."""
                # the holder ingests a message; before its event is accepted (its action still
                # to do), it stops
                stale_holder, stale_token = await settled_holder_of(watch, acting)
                stopped, stopped_log = by_pid[int(stale_holder.split(":")[1])]
                receiver.delay_seconds = 2.0
                await deliver(acting, f"{label}: while stopping")
                await wait_for(lambda: all_in(acting), timeout=30)
                stopped.send_signal(signal.SIGSTOP)
                timeline[f"{label}: stopped"] = time.monotonic()
                stopped_at = len(stopped_log.read_text())
                await deliver(acting, f"{label}: while stopped 1")
                await deliver(plain, f"{label}: while stopped 2")

                # another worker takes the lease over (and delivers what arrived)
                async def taken_over() -> tuple[str, int] | None:
                    row = (await watch.sample()).get(f"watcher:{acting}")
                    moved = row is not None and row.holder not in (None, stale_holder)
                    return (row.holder, int(row.token)) if moved else None

                _, new_token = await wait_for(taken_over, timeout=30, interval=0.05)
                assert new_token > stale_token
                timeline[f"{label}: taken over"] = time.monotonic()
                receiver.delay_seconds = 0.0
                if not resume_at_take_over:
                    # the events and the actions (which follow the webhooks' acceptance): if the
                    # stopped process held the webhook dispatcher's lease row locked inside an open
                    # transaction, PostgreSQL ends that idle session after 1.5 leases (at least 15 s);
                    # stopped between a prepare and its execute, the other worker's heartbeat ends
                    # it after as long (mailport.store.stalled)
                    await wait_for(lambda: all_in(acting), timeout=30)
                    await wait_for(lambda: all_in(plain), timeout=30)
                    await wait_for(actions_done, timeout=45)
                    timeline[f"{label}: delivered by the new holder"] = time.monotonic()

                # the stopped worker continues (at once: before the new holder caught up, its
                # watcher reads what arrived and tries to store it); more mail arrives
                stopped.send_signal(signal.SIGCONT)

                async def noticed() -> bool:
                    said = stopped_log.read_text()[stopped_at:]
                    return "lease lost" in said or "changed hands" in said

                await wait_for(noticed, timeout=20, interval=0.1)
                timeline[f"{label}: resumed worker stood down"] = time.monotonic()
                await deliver(acting, f"{label}: after resuming 1")
                await deliver(plain, f"{label}: after resuming 2")
                await wait_for(lambda: all_in(acting), timeout=30)
                await wait_for(lambda: all_in(plain), timeout=30)
                await wait_for(actions_done, timeout=30)
                timeline[f"{label}: all delivered"] = time.monotonic()
                assert stopped.poll() is None, logs()  # it runs on, without the lease
                return stale_token, new_token, stopped_log.read_text()[stopped_at:]

            try:
                # 2. the new holder delivers what arrived before the stopped one continues
                first = await pause("late", resume_at_take_over=False)
                # 3. the stopped one continues as soon as its lease moved on
                second = await pause("early", resume_at_take_over=True)
            except AssertionError as exc:  # what each worker said, and where the actions stand
                raise AssertionError(f"{exc}\n{await state()}\ntimeline: {timeline}\n{logs()}") from exc
            await asyncio.sleep(LEASE_SECONDS / 2)  # anything late would land by now
            await watch.sample()
            text = logs()
        for mailbox_id in (plain, acting):
            assert await subjects(mailbox_id) == sorted(delivered[mailbox_id]), text  # each exactly once
        assert watch.backwards == [], text
        assert watch.tokens[f"watcher:{acting}"] >= second[1] > second[0] >= first[1] > first[0]
        refusals = [("changed hands" in said) for _, _, said in (first, second)]
        assert await actions_done()
        seen = await asyncio.to_thread(
            dovecot.doveadm, "fetch", "-u", acting_user, "flags", "mailbox", "INBOX", "all"
        )
        assert seen.stdout.decode().count("\\Seen") == len(delivered[acting])
        # a lease moved on is never a crash (other tracebacks may come from a crowded test
        # database: "too many clients"); the resumed worker's watchers ended without an error
        assert "LeaseLostError" not in text, text
        assert "watcher ended with an error" not in text, text
        print("timeline (s):", {k: round(v - timeline["start"], 1) for k, v in timeline.items()})
        print("refused writes seen in the resumed worker's log (late, early):", refusals)
    finally:
        if watch._task is not None:
            await watch.stop()
        await services.aclose()
