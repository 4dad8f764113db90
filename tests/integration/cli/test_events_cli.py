"""``mailport events tail|consumers`` against a real database (SQLite and PostgreSQL): the
lines and the JSON of the log, the filters, tenant isolation, one-line errors; ``--follow`` as a
process printing a message delivered to Dovecot while a ``mailport worker`` watches the mailbox,
and events another process commits; Ctrl-C ends it quietly."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailport.bootstrap import Services
from mailport.events import Event, NewEvent
from tests.fixtures.api import TenantHandle
from tests.fixtures.process import clean_environment, start_mailport, stop
from tests.integration.cli.conftest import AsyncCli
from tests.integration.mail.conftest import add_mailbox
from tests.integration.sync.conftest import make_message
from tests.mailstack.dovecot import Dovecot


async def mailbox_on(services: Services, tenant_id: str, dovecot: Dovecot) -> tuple[str, str]:
    """A mailbox of the tenant on the bed's Dovecot: its id and its user."""
    user, password = dovecot.dyn_user(f"tail{uuid.uuid4().hex[:10]}")
    return await add_mailbox(services, tenant_id, dovecot, user, password), user


async def append(
    services: Services, tenant_id: str, mailbox_id: str | None, type: str, payload: dict[str, object]
) -> Event:
    got = await services.events.append(
        NewEvent(tenant_id, mailbox_id, type, payload, f"test:{time.monotonic_ns()}")
    )
    assert got is not None
    return got


def received(subject: str, sender: str = "alice@example.com") -> dict[str, object]:
    return {"subject": subject, "from": [{"name": "Alice", "email": sender}], "folder": "INBOX"}


async def test_tail_prints_the_log_filtered_as_lines_and_json(
    cli: AsyncCli, acme: TenantHandle, other: TenantHandle, delivery_services: Services, dovecot: Dovecot
) -> None:
    services = delivery_services
    box, _ = await mailbox_on(services, acme.id, dovecot)
    second, _ = await mailbox_on(services, acme.id, dovecot)
    theirs, _ = await mailbox_on(services, other.id, dovecot)
    mine = [
        await append(services, acme.id, box, "message.received", received(f"Anfrage {n} für Zimmer"))
        for n in range(3)
    ]
    error = await append(
        services,
        acme.id,
        second,
        "mailbox.error",
        {"error": "auth_failed", "detail": "wrong password\nreally"},
    )
    await append(services, other.id, theirs, "message.received", received("not yours"))

    printed = (await cli("events", "tail", "-t", "acme")).stdout.splitlines()
    assert len(printed) == 4 and "not yours" not in "\n".join(printed)
    seq, when, type_, mailbox, *words = printed[0].split()
    assert (int(seq), type_, mailbox) == (mine[0].seq, "message.received", box)
    assert when.startswith(mine[0].created_at.strftime("%Y-%m-%dT%H:%M"))
    assert " ".join(words) == "'Anfrage 0 für Zimmer' from alice@example.com"
    assert printed[3].split()[2:] == ["mailbox.error", second, "auth_failed:", "wrong", "password", "really"]

    as_json = [
        json.loads(line)
        for line in (await cli("events", "tail", "-t", acme.id, "--json")).stdout.splitlines()
    ]
    assert as_json == [json.loads(json.dumps(event.to_dict())) for event in [*mine, error]]

    async def lines(*args: str) -> list[int]:
        out = (await cli("events", "tail", "-t", "acme", "--json", *args)).stdout
        return [json.loads(line)["seq"] for line in out.splitlines()]

    assert await lines("--last", "2") == [mine[2].seq, error.seq]
    assert await lines("--since-seq", str(mine[1].seq)) == [mine[2].seq, error.seq]
    assert await lines("--mailbox", second) == [error.seq]
    assert await lines("--type", "mailbox.error") == [error.seq]
    assert await lines("--type", "message.received", "--last", "1") == [mine[2].seq]
    assert await lines("--type", "mailbox.error,message.received", "--mailbox", box, "--last", "5") == [
        e.seq for e in mine
    ]
    assert await lines("--last", "0") == []
    assert await lines("--since-seq", "0", "--max-events", "2") == [mine[0].seq, mine[1].seq]
    # --follow ends by itself after --max-events (here from the backlog, in this process)
    assert await lines("--follow", "--since-seq", "0", "--max-events", "3") == [e.seq for e in mine]

    await cli.refused("not_found", "events", "tail", "-t", "acme", "--mailbox", theirs)
    await cli.refused("invalid_input", "events", "tail", "-t", "acme", "--type", "message.nope")
    await cli.refused("invalid_input", "events", "tail", "-t", "acme", "--last", "2", "--since-seq", "1")
    await cli.refused("not_found", "events", "tail", "-t", "nobody")
    assert (await cli("events", "tail", "-t", "acme", "--last", "-1", ok=False)).returncode == 2  # usage


async def test_consumers_listed_and_deleted(
    cli: AsyncCli, acme: TenantHandle, delivery_services: Services, dovecot: Dovecot
) -> None:
    services = delivery_services
    box, _ = await mailbox_on(services, acme.id, dovecot)
    event = await append(services, acme.id, box, "message.received", received("for billing"))
    await services.webhooks.events_after(acme.id, after=None, limit=10, consumer="billing")
    await services.webhooks.acknowledge(acme.id, through="0", consumer="crm", mailbox_id=box)

    listed = json.loads((await cli("events", "consumers", "list", "-t", "acme", "--json")).stdout)["items"]
    assert {(c["name"], c["mailbox_id"], c["acked_cursor"]) for c in listed} == {
        ("billing", None, "0"),
        ("crm", box, "0"),
    }
    table = (await cli("events", "consumers", "list", "-t", "acme")).stdout
    assert "billing" in table and "crm" in table and box in table

    await services.webhooks.acknowledge(acme.id, through=str(event.seq), consumer="billing")
    deleted = await cli("events", "consumers", "delete", "crm", "-t", "acme", "--mailbox", box)
    assert deleted.stdout.strip() == "deleted crm: 1 event accepted"  # billing had it; crm owed it too
    stored = await services.events.get(event.id)
    assert stored is not None and stored.accepted_at is not None
    await cli.refused("not_found", "events", "consumers", "delete", "crm", "-t", "acme", "--mailbox", box)
    await cli.refused("invalid_input", "events", "consumers", "delete", "no such name!", "-t", "acme")


# ---------------------------------------------------------------------------------- --follow


class Tail:
    """``mailport events tail --follow …`` as a process; its stdout lines collected by a thread."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailport", "events", "tail", "--follow", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
            self.lines.append((time.monotonic(), text.rstrip("\n")))

    async def wait_for(self, needle: str, timeout: float = 20.0) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while True:
            for at, text in list(self.lines):
                if needle in text:
                    return at, text
            assert self.proc.poll() is None, self.stderr()
            assert time.monotonic() < deadline, f"no line with {needle!r}: {self.lines}"
            await asyncio.sleep(0.02)

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        return self.proc.wait(15)

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read() if self.proc.poll() is not None else ""


@pytest.fixture
def environment(delivery_services: Services, tmp_path: Path) -> dict[str, str]:
    settings = delivery_services.settings
    assert settings.secret_keys is not None
    env = clean_environment()
    env.update(
        MAILPORT_DATABASE_URL=settings.database_url,
        MAILPORT_SECRET_KEYS=settings.secret_keys.get_secret_value(),
        MAILPORT_DATA_DIR=str(tmp_path / "var"),
        MAILPORT_ALLOW_PRIVATE_HOSTS="true",
        MAILPORT_LOG_LEVEL="INFO",
    )
    return env


StartTail = Callable[[list[str]], Tail]


@pytest.fixture
def start_tail(environment: dict[str, str], tmp_path: Path) -> Iterator[StartTail]:
    """``start_tail(args)``: ``mailport events tail --follow ARGS`` on the test's database."""
    started: list[Tail] = []

    def start(args: list[str]) -> Tail:
        started.append(Tail(args, environment, tmp_path))
        return started[-1]

    yield start
    for tail in started:
        if tail.proc.poll() is None:
            tail.proc.kill()
            tail.proc.wait(10)


async def test_follow_prints_mail_delivered_to_dovecot_while_a_worker_watches(
    acme: TenantHandle,
    delivery_services: Services,
    dovecot: Dovecot,
    environment: dict[str, str],
    start_tail: StartTail,
    tmp_path: Path,
) -> None:
    box, user = await mailbox_on(delivery_services, acme.id, dovecot)
    tail = start_tail(["-t", "acme", "--since-seq", "0"])
    log = tmp_path / "worker.log"
    worker = start_mailport("worker", cwd=tmp_path, env=environment, log_path=log)
    try:
        await tail.wait_for("mailbox.connected", timeout=30)  # the worker watches; tail follows it
        subject = "Zimmeranfrage für Mai"
        delivered_at = time.monotonic()
        await asyncio.to_thread(
            dovecot.deliver, user, make_message(subject, message_id=f"tail-{time.monotonic_ns()}")
        )
        at, text = await tail.wait_for(subject)
        assert text.split()[2:4] == ["message.received", box], text
        assert at - delivered_at < 10
        assert tail.interrupt() == 0
        assert tail.stderr() == ""  # quiet: no traceback, no "aborted"
    finally:
        stop(worker)
    assert "Traceback" not in log.read_text()


async def test_follow_prints_what_another_process_commits_as_json_lines(
    acme: TenantHandle,
    other: TenantHandle,
    delivery_services: Services,
    dovecot: Dovecot,
    start_tail: StartTail,
) -> None:
    services = delivery_services
    box, _ = await mailbox_on(services, acme.id, dovecot)
    before = await append(services, acme.id, box, "message.received", received("before the tail"))
    args = ["-t", acme.id, "--mailbox", box, "--type", "message.received", "--json", "--last", "1"]
    tail = start_tail(args)
    await tail.wait_for(before.id)  # the backlog first (--last 1)
    delays = []
    for n in range(5):
        await append(services, other.id, None, "message.received", received(f"other tenant {n}"))
        await append(services, acme.id, box, "mailbox.error", {"error": "timeout"})  # filtered out
        sent = time.monotonic()
        event = await append(services, acme.id, box, "message.received", received(f"live {n}"))
        at, text = await tail.wait_for(event.id)
        assert json.loads(text) == json.loads(json.dumps(event.to_dict()))
        delays.append(at - sent)
    printed = [json.loads(text) for _, text in tail.lines]
    assert [e["data"]["subject"] for e in printed] == ["before the tail", *(f"live {n}" for n in range(5))]
    assert max(delays) < 3, delays  # another process's commit is found by the 0.5 s poll
    assert tail.interrupt() == 0 and tail.stderr() == ""
