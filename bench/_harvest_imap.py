"""The Dovecot half of ``bench/contacts.py``: a mailbox of the generated messages on a Dovecot this
script starts, harvested through the real connector (implicit TLS, as a provider would be).

The mailbox is written as maildir files before Dovecot first looks at it
(:func:`tests.mailstack.fill.fill_maildir`: no IMAP, no fsync per message), then indexed by one
EXAMINE, outside every figure. Then, each figure the median of ``repeat`` runs unless said:

(a) ``fetch``: :meth:`ImapConnector.header_blocks` over the whole INBOX (``rules.FIELDS`` plus
    Message-ID and Date, 500 a chunk), next to ``fetch_one_command``: the same items in a single
    ``UID FETCH`` (what chunking costs);
(b) ``harvest``: :func:`mailport.contacts.harvest` over the fetched blocks (direction judged from
    From, Gmail folding on);
(c) ``end_to_end_<database>_<plan>``: header_blocks → harvest →
    :func:`mailport.contacts.store.record` into a fresh database as a harvest run does it
    (batches recorded without events, then each contact announced once by
    :func:`mailport.contacts.store.announce_book`: ``announce_s``), once per :data:`PLANS`
    entry: fetch and record taking turns, the next chunk fetched while the last one is recorded
    (``overlapped``), and that with 2,000 messages a transaction; ``harvest_s``/``record_s``
    split the time, ``cpu_s`` is this process's CPU time (a shared machine's load inflates wall
    time, much less CPU time);
(d) ``first_list_s``: from connecting to the first chunk recorded and the top 20 contacts by rank
    read back (what a UI shows first).
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._services import bench_services, password_mailbox
from sqlalchemy import select
from tests.connectors.mailbed import make_mailbox
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.fill import fill_maildir

from mailport.bootstrap import Services
from mailport.connectors.base import HeaderBlock
from mailport.connectors.imap import ImapConnector
from mailport.connectors.imap_headers import fetch_items
from mailport.contacts import Identity, harvest
from mailport.contacts.harvest import message_digest
from mailport.contacts.models import Book
from mailport.contacts.rules import FIELDS
from mailport.contacts.store import HarvestedMessage, announce_book, record
from mailport.mailboxes.models import Security, ServerSettings
from mailport.store.tables import contacts

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
WANTED = tuple(sorted({*FIELDS, "message-id", "date"}))
CHUNK = 500
BODY = b"Hello,\r\n\r\nsee you on Tuesday.\r\n"


@dataclass
class Bed:
    dovecot: Dovecot
    user: str
    password: str
    count: int

    def connector(self) -> ImapConnector:
        plain = make_mailbox("imap", self.user, self.password, self.dovecot.imaps_port)
        mailbox = replace(plain, imap=ServerSettings("127.0.0.1", self.dovecot.imaps_port, Security.SSL))
        return ImapConnector(mailbox, ssl_context=ssl.create_default_context(cafile=self.dovecot.ca_file))


async def _connected(bed: Bed) -> ImapConnector:
    connector = bed.connector()
    await connector.connect()
    return connector


def _median(runs: Sequence[float]) -> float:
    return statistics.median(runs)


async def _fetch(bed: Bed) -> tuple[float, list[HeaderBlock]]:
    connector = await _connected(bed)
    try:
        started = time.perf_counter()
        blocks = [
            b async for chunk in connector.header_blocks("INBOX", since=SINCE, fields=WANTED) for b in chunk
        ]
        return time.perf_counter() - started, blocks
    finally:
        await connector.disconnect()


async def _fetch_one_command(bed: Bed) -> float:
    connector = await _connected(bed)
    try:
        client = connector._require()
        started = time.perf_counter()
        await client.examine("INBOX")
        found = await client.fetch("1:*", fetch_items(WANTED), timeout=600)
        assert len(found) == bed.count
        return time.perf_counter() - started
    finally:
        await connector.disconnect()


def _harvested(blocks: Sequence[HeaderBlock], me: Identity) -> list[HarvestedMessage]:
    return [
        HarvestedMessage(
            message_digest(b.block), harvest(b.block, None, b.received_at or SINCE, identity=me, fold=True)
        )
        for b in blocks
    ]


@dataclass
class EndToEnd:
    seconds: float
    cpu_s: float  # this process's CPU time (the database server's is not in it)
    harvest_s: float
    record_s: float
    announce_s: float
    first_list_s: float
    contacts: int
    events: int


async def _book(services: Services, user: str) -> tuple[Book, str]:
    tenant, _key = await services.tenants.create_tenant("bench")
    imap = ServerSettings("imap.example.com", 993, Security.SSL)  # never connected: a row to record for
    mailbox = await password_mailbox(services, tenant.id, user, "pw", imap)
    return Book(tenant.id), mailbox.id


async def _chunks(connector: ImapConnector, *, overlapped: bool) -> AsyncIterator[list[HeaderBlock]]:
    """The connector's chunks; ``overlapped``: the next one is fetched while the caller works."""
    source = connector.header_blocks("INBOX", since=SINCE, fields=WANTED, chunk=CHUNK)
    if not overlapped:
        async for chunk in source:
            yield chunk
        return
    queue: asyncio.Queue[list[HeaderBlock] | None] = asyncio.Queue(maxsize=2)

    async def produce() -> None:
        async for chunk in source:
            await queue.put(chunk)
        await queue.put(None)

    task = asyncio.create_task(produce())
    try:
        while (chunk := await queue.get()) is not None:
            yield chunk
        await task
    finally:
        task.cancel()


@dataclass(frozen=True)
class Plan:
    """How a run records: ``batch`` messages a transaction (whole fetched chunks), and whether
    the next chunk is fetched while the last one is harvested and recorded."""

    name: str
    overlapped: bool
    batch: int


PLANS = (
    Plan("sequential", False, CHUNK),
    Plan("overlapped", True, CHUNK),
    Plan("overlapped_batch2000", True, 2000),
)


async def _top(services: Services, book: Book) -> list[str]:
    """The first page of a contact list: the 20 best by rank."""
    async with services.database.connect() as conn:
        query = (
            select(contacts.c.email)
            .where(contacts.c.tenant_id == book.tenant_id, contacts.c.owner == book.owner)
            .order_by(contacts.c.rank.desc())
            .limit(20)
        )
        return list((await conn.execute(query)).scalars().all())


async def _end_to_end(bed: Bed, database_url: str, data_dir: Path, me: Identity, plan: Plan) -> EndToEnd:
    services = await bench_services(database_url, data_dir)
    try:
        book, mailbox_id = await _book(services, bed.user)
        now = datetime.now(UTC)
        spent = {"harvest": 0.0, "record": 0.0, "announce": 0.0}
        first_list: float | None = None
        events = 0
        pending: list[HarvestedMessage] = []
        started, cpu = time.perf_counter(), time.process_time()

        async def flush() -> None:
            nonlocal first_list, events
            mark = time.perf_counter()
            async with services.database.transaction() as conn:
                await record(conn, book, mailbox_id, pending, now=now, events=False)
            spent["record"] += time.perf_counter() - mark
            pending.clear()
            if first_list is None:
                assert await _top(services, book)
                first_list = time.perf_counter() - started

        connector = await _connected(bed)
        try:
            async for chunk in _chunks(connector, overlapped=plan.overlapped):
                mark = time.perf_counter()
                pending += _harvested(chunk, me)
                spent["harvest"] += time.perf_counter() - mark
                if len(pending) >= plan.batch or first_list is None:  # the first list as soon as can be
                    await flush()
            if pending:
                await flush()
        finally:
            await connector.disconnect()
        mark = time.perf_counter()
        while True:  # what the run does after each folder: every contact announced once
            async with services.database.transaction() as conn:
                told = await announce_book(conn, book, mailbox_id=mailbox_id, now=now)
            events += told
            if not told:
                break
        spent["announce"] = time.perf_counter() - mark
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        async with services.database.connect() as conn:
            made = len((await conn.execute(select(contacts.c.id))).all())
        assert first_list is not None
        return EndToEnd(
            seconds, cpu, spent["harvest"], spent["record"], spent["announce"], first_list, made, events
        )
    finally:
        await services.aclose()


def make_bed(root: Path, blocks: Sequence[bytes]) -> tuple[Bed, float]:
    """A started Dovecot whose user's INBOX holds ``blocks`` (each with a short body), indexed;
    and the seconds it took."""
    dovecot = Dovecot(root / "dovecot")
    dovecot.start()
    user, password = dovecot.dyn_user("harvest")
    started = time.perf_counter()
    fill_maildir(dovecot, user, len(blocks), make=lambda n: blocks[n] + BODY)
    bed = Bed(dovecot, user, password, len(blocks))

    async def index() -> None:
        connector = await _connected(bed)
        try:
            await connector._require().examine("INBOX")
        finally:
            await connector.disconnect()

    asyncio.run(index())
    return bed, time.perf_counter() - started


def run(
    blocks: Sequence[bytes],
    me: Identity,
    *,
    repeat: int,
    databases: Sequence[tuple[str, Callable[[], tuple[str, Callable[[], None]]]]],
) -> dict[str, Any]:
    """Every figure of the module docstring; ``databases``: (name, make) where ``make()`` gives a
    fresh database URL and its clean-up."""
    root = Path(tempfile.mkdtemp(prefix="mailport-bench-contacts-"))
    bed, fill_s = make_bed(root, blocks)
    n = len(blocks)
    out: dict[str, Any] = {"messages": n, "fill_and_index_s": round(fill_s, 1)}
    try:
        fetches = [asyncio.run(_fetch(bed)) for _ in range(repeat)]
        fetched = fetches[0][1]
        assert len(fetched) == n, (len(fetched), n)
        one_command = [asyncio.run(_fetch_one_command(bed)) for _ in range(repeat)]
        harvests, harvest_cpu = [], []
        for _ in range(repeat):
            started, cpu = time.perf_counter(), time.process_time()
            _harvested(fetched, me)
            harvests.append(time.perf_counter() - started)
            harvest_cpu.append(time.process_time() - cpu)
        out["mean_header_block_bytes"] = round(sum(len(b.block) for b in fetched) / n)
        out["fetch_msgs_per_s"] = round(n / _median([t for t, _ in fetches]))
        out["fetch_one_command_msgs_per_s"] = round(n / _median(one_command))
        out["harvest_msgs_per_s"] = round(n / _median(harvests))
        out["harvest_msgs_per_cpu_s"] = round(n / _median(harvest_cpu))
        for name, make in databases:
            for plan in PLANS:
                url, clean = make()
                try:
                    got = asyncio.run(_end_to_end(bed, url, root / f"var-{name}", me, plan))
                finally:
                    clean()
                out[f"end_to_end_{name}_{plan.name}"] = {
                    "msgs_per_s": round(n / got.seconds),
                    "seconds": round(got.seconds, 2),
                    "cpu_s": round(got.cpu_s, 2),
                    "harvest_s": round(got.harvest_s, 2),
                    "record_s": round(got.record_s, 2),
                    "record_msgs_per_s": round(n / got.record_s),
                    "announce_s": round(got.announce_s, 2),
                    "first_list_s": round(got.first_list_s, 3),
                    "contacts": got.contacts,
                    "contact_events": got.events,
                }
    finally:
        bed.dovecot.stop(timeout=60)
        shutil.rmtree(root, ignore_errors=True)
    return out
