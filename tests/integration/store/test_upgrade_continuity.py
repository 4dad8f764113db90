"""An installation of the last release before the connector core keeps working across the upgrade.

The old code (:data:`OLD_MAIN`, taken from git) runs as ``mailport serve`` in a subprocess on a
real database and the real Dovecot: it ingests mail, delivers some of it, and leaves events
waiting for a webhook endpoint and a pull consumer, and after-processing actions waiting for
them. Then this checkout migrates the database to *its* head and serves it. The test reads
only what outlives any refactoring: the HTTP API, the webhooks received, the messages on the
IMAP server, and the rows of ``events`` and ``messages`` searched as text (never their columns),
so it proves continuity for whatever migrations the head has:

* every message is delivered exactly once over the whole history (webhook, pull and event log,
  counted by Message-ID), and a pending event keeps its ``webhook-id``;
* the events left waiting are delivered or acknowledged once, and their actions then run on the
  server (the messages move to ``Processed``);
* the cursor goes on: mail that arrived while nothing ran, and after the upgrade, arrives; no old
  message is ingested again.
"""

from __future__ import annotations

import asyncio
import email.parser
import imaplib
import io
import json
import signal
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from mailport.store import current_revision, head_revision, open_database, upgrade
from tests.fixtures.process import clean_environment, run_mailport, start_mailport, wait_until_healthy
from tests.fixtures.webhook_receiver import MakeReceiver, Received, WebhookReceiver
from tests.integration.sync.conftest import make_message, wait_for
from tests.mailstack.dovecot import Dovecot, free_port

# `main` before the connector core (schema head 0008_oauth_resilience): the databases in the field.
OLD_MAIN = "7dcd56dc3c49c58da930efa9a62a73449a5e16a8"
REPO = Path(__file__).resolve().parents[3]
ADMIN_KEY = "mp_admin_continuity_" + uuid.uuid4().hex
HELD = b"[held]"  # the receiver answers 500 to these until the upgrade
PROCESSED = "Processed"


def materialise_old_code(into: Path) -> Path:
    """``src/`` of :data:`OLD_MAIN` under ``into``; fails (never skips) when git lacks the commit."""
    found = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{OLD_MAIN}^{{commit}}"], capture_output=True, check=False
    )
    if found.returncode != 0:
        pytest.fail(
            f"commit {OLD_MAIN} (the main this upgrade test starts from) is not in the git history of "
            f"{REPO}: clone with full history (no --depth, or `git fetch --unshallow`) "
            f"[{found.stderr.decode(errors='replace').strip()}]",
            pytrace=False,
        )
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", OLD_MAIN, "src"], capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


@dataclass
class Mail:
    """One test message: ``token`` (in its Message-ID) finds it in webhooks, rows and folders."""

    label: str
    token: str
    raw: bytes

    @classmethod
    def make(cls, label: str, run: str, *, held: bool = False) -> Mail:
        token = f"cont{run}-{label}"
        subject = f"continuity {label}" + (" " + HELD.decode() if held else "")
        return cls(label, token, make_message(subject, message_id=token))


@dataclass
class Serve:
    """A ``mailport serve`` subprocess (old or new code) and its log."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        """SIGTERM; it must stop cleanly (uvicorn ends by re-raising the signal), no traceback."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        output = self.log.read_text()
        assert self.proc.returncode in (0, -signal.SIGTERM), output
        assert "Traceback" not in output, output


@contextmanager
def serving(tmp_path: Path, name: str, environment: dict[str, str]) -> Iterator[Serve]:
    port = free_port()
    log = tmp_path / f"{name}.log"
    proc = start_mailport(
        "serve", cwd=tmp_path, env={**environment, "MAILPORT_PORT": str(port)}, log_path=log
    )
    serve = Serve(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_until_healthy(proc, serve.url, log)
        yield serve
        serve.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def eventually(check: Callable[[], Awaitable[Any]], what: str, *logs: Path, timeout: float = 30) -> Any:
    """``check()``'s first truthy value; on timeout the assertion shows the service logs."""
    try:
        return await wait_for(check, timeout=timeout, interval=0.2)
    except AssertionError as exc:
        tails = "\n".join(f"--- {log.name}\n{log.read_text()[-6000:]}" for log in logs)
        raise AssertionError(f"{what}: {exc}\n{tails}") from None


def folder_message_ids(dovecot: Dovecot, user: str, password: str, folder: str) -> list[str]:
    """The Message-IDs in ``folder`` as any IMAP client sees them (stdlib ``imaplib``, not ours)."""
    with imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=10) as imap:
        imap.login(user, password)
        status, _ = imap.select(f'"{folder}"', readonly=True)
        if status != "OK":
            return []  # not created yet
        _, found = imap.uid("SEARCH", "ALL")
        uids = found[0].decode().split() if found and found[0] else []
        if not uids:
            return []
        _, fetched = imap.uid("FETCH", ",".join(uids), "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        parser = email.parser.BytesHeaderParser()
        return [str(parser.parsebytes(part[1])["Message-ID"]) for part in fetched if isinstance(part, tuple)]


async def on_server(dovecot: Dovecot, user: str, password: str, folder: str) -> list[str]:
    return await asyncio.to_thread(folder_message_ids, dovecot, user, password, folder)


def holding(ids: Iterable[str], token: str) -> int:
    return sum(token in i for i in ids)


def with_token(requests: Iterable[Received], token: str) -> list[Received]:
    return [r for r in requests if token.encode() in r.body]


async def rows_as_text(url: str, table: str) -> list[tuple[str | None, str]]:
    """Every row of ``table`` as (its ``type`` if any, the whole row as text): whatever columns
    a migration renamed or added, a message's Message-ID is still somewhere in its rows."""
    database = open_database(url)
    try:
        async with database.connect() as conn:
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).mappings().all()
    finally:
        await database.aclose()
    return [(row.get("type"), repr(dict(row))) for row in rows]


async def old_state(url: str, sql: str) -> list[Any]:
    """A query on the database as :data:`OLD_MAIN` left it (its schema is known and fixed)."""
    database = open_database(url)
    try:
        async with database.connect() as conn:
            return list((await conn.execute(text(sql))).all())
    finally:
        await database.aclose()


@pytest.mark.slow  # two `mailport serve` generations in subprocesses: 40-70 s on CI
async def test_a_database_of_the_old_main_is_migrated_and_ingestion_goes_on(
    tmp_path: Path,
    fresh_database_url: str,
    secret_key: str,
    dovecot: Dovecot,
    password_user: tuple[str, str],
    make_receiver: MakeReceiver,
) -> None:
    user, password = password_user
    run = uuid.uuid4().hex[:8]
    old0, old1, old2, old3 = (
        Mail.make("old0", run),  # before any webhook: the pull consumer `app` owes it
        Mail.make("old1", run),  # delivered and moved by the old code
        Mail.make("old2", run, held=True),  # refused once by the receiver: a pending delivery
        Mail.make("old3", run, held=True),  # queued behind it
    )
    new0, new1 = Mail.make("new0", run), Mail.make("new1", run)  # while nothing ran; after the upgrade
    everything = (old0, old1, old2, old3, new0, new1)
    receiver: WebhookReceiver = make_receiver(fail_marker=HELD)

    environment = clean_environment()
    environment.update(
        MAILPORT_DATABASE_URL=fresh_database_url,
        MAILPORT_DATA_DIR=str(tmp_path / "var"),
        MAILPORT_SECRET_KEYS=secret_key,
        MAILPORT_ADMIN_KEY=ADMIN_KEY,
        MAILPORT_ALLOW_PRIVATE_HOSTS="true",
        MAILPORT_LOG_LEVEL="INFO",
    )
    old_environment = {**environment, "PYTHONPATH": str(materialise_old_code(tmp_path / "old"))}
    imported = subprocess.run(
        [sys.executable, "-c", "import mailport; print(mailport.__file__)"],
        env=old_environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.startswith(str(tmp_path / "old" / "src")), imported.stdout
    migrated = run_mailport("db", "upgrade", env=old_environment)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    # ---------------------------------------------------------------- the old code
    with serving(tmp_path, "old-serve", old_environment) as old:
        async with httpx.AsyncClient(base_url=old.url, timeout=10) as http:
            created = await http.post(
                "/v1/tenants", json={"name": "continuity"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            )
            assert created.status_code == 201, created.text
            http.headers["Authorization"] = f"Bearer {created.json()['api_key']}"
            added = await http.post(
                "/v1/mailboxes",
                json={
                    "email": user,
                    "auth_method": "password",
                    "password": password,
                    "imap": {"host": "127.0.0.1", "port": dovecot.imap_port, "security": "none"},
                    "settings": {"after_processing": f"move:{PROCESSED}"},
                },
            )
            assert added.status_code == 201, added.text
            mailbox_id = added.json()["id"]

            await asyncio.to_thread(dovecot.deliver, user, old0.raw)

            async def pull_sees_old0() -> dict[str, Any] | None:
                page = (await http.get("/v1/events", params={"consumer": "app", "limit": 500})).json()
                return page if any(old0.token in json.dumps(e) for e in page["items"]) else None

            # read, not acknowledged: the consumer still owes old0 (and the mailbox.connected)
            first_read = await eventually(pull_sees_old0, "old0 readable by pull", old.log)
            cursor = first_read["next_cursor"]

            hook = await http.post("/v1/webhooks", json={"url": receiver.url, "events": ["message.received"]})
            assert hook.status_code == 201, hook.text
            await asyncio.to_thread(dovecot.deliver, user, old1.raw)

            async def old1_moved() -> bool:
                return holding(await on_server(dovecot, user, password, PROCESSED), old1.token) == 1

            await eventually(old1_moved, "old1 delivered, accepted and moved by the old code", old.log)

            await asyncio.to_thread(dovecot.deliver, user, old2.raw)
            await asyncio.to_thread(dovecot.deliver, user, old3.raw)

            async def old2_refused_and_old3_ingested() -> bool:
                health = (await http.get(f"/v1/mailboxes/{mailbox_id}/health")).json()
                refused = [r for r in with_token(receiver.requests, old2.token) if r.status == 500]
                return bool(refused) and health["processed_24h"] >= 4

            await eventually(old2_refused_and_old3_ingested, "old2 refused, old3 ingested", old.log)
    # stopped right after the first refusal: its retry is due within seconds

    old_events = {
        mail.token: (event_id, accepted_at)
        for event_id, payload, accepted_at in await old_state(
            fresh_database_url, "SELECT id, payload, accepted_at FROM events WHERE type = 'message.received'"
        )
        for mail in everything
        if mail.token in payload
    }
    assert set(old_events) == {old0.token, old1.token, old2.token, old3.token}
    waiting = {mail.label for mail in (old0, old1, old2, old3) if old_events[mail.token][1] is None}
    assert waiting == {"old0", "old2", "old3"}
    actions = dict(await old_state(fresh_database_url, "SELECT event_id, state FROM pending_actions"))
    assert {label: actions[old_events[m.token][0]] for label, m in (("old0", old0), ("old1", old1))} == {
        "old0": "pending",
        "old1": "done",
    }
    assert actions[old_events[old2.token][0]] == actions[old_events[old3.token][0]] == "pending"
    deliveries = dict(await old_state(fresh_database_url, "SELECT event_id, status FROM webhook_deliveries"))
    assert deliveries[old_events[old2.token][0]] == deliveries[old_events[old3.token][0]] == "pending"
    cursors = await old_state(fresh_database_url, "SELECT folder, last_uid FROM mailbox_cursors")
    assert cursors == [("INBOX", 4)]
    inbox = await on_server(dovecot, user, password, "INBOX")
    assert [holding(inbox, m.token) for m in (old0, old1, old2, old3)] == [1, 0, 1, 1]

    await asyncio.to_thread(dovecot.deliver, user, new0.raw)  # while no mailport runs

    # ---------------------------------------------------------------- this checkout
    database = open_database(fresh_database_url)
    try:
        await upgrade(database)
        assert await current_revision(database) == head_revision()
    finally:
        await database.aclose()
    receiver.fail_marker = None

    with serving(tmp_path, "new-serve", environment) as new:
        async with httpx.AsyncClient(base_url=new.url, timeout=10) as http:
            http.headers["Authorization"] = f"Bearer {created.json()['api_key']}"
            kept = (await http.get(f"/v1/mailboxes/{mailbox_id}")).json()
            assert (kept["email"], kept["settings"]["after_processing"]) == (user, f"move:{PROCESSED}"), kept
            pulled = [first_read["items"]]
            page = await http.get("/v1/events", params={"consumer": "app", "after": cursor, "limit": 500})
            assert page.status_code == 200, page.text  # the old cursor still reads, and acknowledges old0
            pulled.append(page.json()["items"])
            cursor = page.json()["next_cursor"]
            await asyncio.to_thread(dovecot.deliver, user, new1.raw)

            async def all_delivered() -> bool:
                got = receiver.succeeded()
                return all(with_token(got, m.token) for m in (old1, old2, old3, new0, new1))

            await eventually(all_delivered, "the waiting and the new messages delivered", new.log)

            async def all_processed() -> bool:
                moved = await on_server(dovecot, user, password, PROCESSED)
                inbox = await on_server(dovecot, user, password, "INBOX")
                return all(holding(moved, m.token) == 1 and not holding(inbox, m.token) for m in everything)

            await eventually(all_processed, "every message moved once", new.log)

            while True:  # the pull consumer reads to the end; each read acknowledges the previous
                page = await http.get("/v1/events", params={"consumer": "app", "after": cursor, "limit": 500})
                assert page.status_code == 200, page.text
                if not page.json()["items"]:
                    break
                pulled.append(page.json()["items"])
                cursor = page.json()["next_cursor"]

            async def nothing_waits() -> bool:
                health = (await http.get(f"/v1/mailboxes/{mailbox_id}/health")).json()
                return health["queue_size"] == 0

            await eventually(nothing_waits, "every event accepted", new.log)

    # Exactly once, over the whole history: by webhook ...
    delivered = [r for r in receiver.succeeded() if r.json()["type"] == "message.received"]
    assert {m.label: len(with_token(delivered, m.token)) for m in everything} == {
        "old0": 0,  # the pull consumer's, not the webhook's (no backfill)
        "old1": 1,
        "old2": 1,
        "old3": 1,
        "new0": 1,
        "new1": 1,
    }
    assert len(delivered) == 5
    assert len({r.headers["webhook-id"] for r in receiver.succeeded()}) == len(receiver.succeeded())
    for mail in (old2, old3):  # the pending deliveries of the old events, not new events
        assert with_token(delivered, mail.token)[0].headers["webhook-id"] == old_events[mail.token][0]
    # ... by pull (no event read twice across the upgrade) ...
    pulled_ids = [event["id"] for items in pulled for event in items]
    assert len(pulled_ids) == len(set(pulled_ids))
    received = [json.dumps(e) for items in pulled for e in items if e["type"] == "message.received"]
    assert holding(received, old0.token) == 1
    assert all(holding(received, m.token) <= 1 for m in everything)
    # ... in the event log, and ingested once (the cursor went on, nothing was read again)
    log = await rows_as_text(fresh_database_url, "events")
    assert [kind for kind, _row in log if kind == "mailbox.reset"] == []  # the epoch was kept
    logged = [row for kind, row in log if kind == "message.received"]
    assert {m.label: holding(logged, m.token) for m in everything} == {m.label: 1 for m in everything}
    assert len(logged) == len(everything)
    assert all(holding(logged, event_id) == 1 for event_id, _accepted in old_events.values())
    stored = [row for _kind, row in await rows_as_text(fresh_database_url, "messages")]
    assert {m.label: holding(stored, m.token) for m in everything} == {m.label: 1 for m in everything}
    assert len(stored) == len(everything)
