"""Search and threads through :class:`~mailport.mailboxes.access.MailAccess` over the ``fake``
connector, on SQLite and PostgreSQL: a thread key handed out by ingestion or by a search is
looked up to its root and the conversation comes back across the inbox and Sent, oldest first;
an unknown key is 404 ``thread_not_found``; another tenant's mailbox is 404; a criterion the
connector cannot search is 422 ``unsupported_feature``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from mailport.bootstrap import Services
from mailport.connectors.base import Cursor
from mailport.connectors.mail import SearchQuery
from mailport.errors import InputError, NotFoundError, ThreadNotFoundError, UnsupportedFeatureError
from mailport.mailboxes.models import Mailbox
from mailport.sync.pipeline import parse_chunk, store_chunk
from tests.connectors.conftest import _mailbox
from tests.connectors.fake import FakeMail, FakeServer

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def mail(
    subject: str,
    message_id: str,
    *,
    sender: str = "Jürgen <juergen@example.test>",
    parent: str | None = None,
    references: tuple[str, ...] = (),
    at: datetime = T0,
) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "box@example.test", subject
    msg["Message-ID"] = message_id
    msg["Date"] = at.strftime("%a, %d %b %Y %H:%M:%S +0000")
    if parent:
        msg["In-Reply-To"] = parent
    if references:
        msg["References"] = " ".join(references)
    msg.set_content(f"about {subject}")
    return msg.as_bytes().replace(b"\n", b"\r\n")


ROOT = "<root@example.test>"


def conversation(remote: FakeMail) -> None:
    """A root and a reply in the inbox, our answer in Sent, an unrelated message."""
    remote.append(mail("Angebot", ROOT, at=T0), at=T0)
    remote.append(
        mail(
            "Re: Angebot", "<ours@example.test>", sender="box@example.test", parent=ROOT, references=(ROOT,)
        ),
        scope="Sent",
        at=T0 + timedelta(hours=1),
    )
    remote.append(
        mail(
            "Re: Angebot",
            "<theirs@example.test>",
            parent="<ours@example.test>",
            references=(ROOT, "<ours@example.test>"),
            at=T0 + timedelta(hours=2),
        ),
        at=T0 + timedelta(hours=2),
    )
    remote.append(mail("Other", "<other@example.test>", sender="x@example.test", at=T0), at=T0)


@pytest.fixture
async def mailbox(services: Services, fake_connector: FakeServer) -> Mailbox:
    made = await _mailbox(services, "fake", "box@example.test", "pw", 993)
    conversation(fake_connector[made.email])
    return made


async def test_a_key_from_ingestion_gives_the_conversation_across_inbox_and_sent(
    services: Services, mailbox: Mailbox
) -> None:
    connector = services.connector(mailbox)
    await connector.connect()
    try:
        batches = [b async for b in connector.fetch_since(Cursor("INBOX", "1", "0"))]
        (batch,) = batches
        parsed = await parse_chunk(mailbox.id, "INBOX", batch.messages)
        async with services.database.transaction() as conn:
            result = await store_chunk(
                conn, mailbox, batch, parsed, now=T0, check_known=False, started=time.perf_counter()
            )
    finally:
        await connector.disconnect()
    keys = {e.payload["subject"]: e.payload["thread_key"] for e in result.events}
    assert keys["Angebot"] == keys["Re: Angebot"] != keys["Other"]

    thread = await services.mail.thread_by_key(mailbox.tenant_id, mailbox.id, keys["Re: Angebot"])
    assert [(s.folder, s.envelope.message_id) for s in thread] == [
        ("INBOX", "root@example.test"),
        ("Sent", "ours@example.test"),
        ("INBOX", "theirs@example.test"),
    ]
    assert {s.thread_key for s in thread} == {keys["Angebot"]}


async def test_a_key_from_a_search_is_known_and_search_pages(services: Services, mailbox: Mailbox) -> None:
    first = await services.mail.search(
        mailbox.tenant_id, mailbox.id, SearchQuery(from_="jürgen", subject="angebot", limit=1)
    )
    assert [s.envelope.message_id for s in first.items] == ["theirs@example.test"]
    assert first.next_cursor is not None
    second = await services.mail.search(
        mailbox.tenant_id,
        mailbox.id,
        SearchQuery(from_="jürgen", subject="angebot", limit=1, cursor=first.next_cursor),
    )
    assert [s.envelope.message_id for s in second.items] == ["root@example.test"]
    assert second.next_cursor is None

    key = first.items[0].thread_key
    assert key is not None
    thread = await services.mail.thread_by_key(mailbox.tenant_id, mailbox.id, key)
    assert len(thread) == 3


async def test_unknown_keys_other_tenants_and_unsupported_criteria(
    services: Services, mailbox: Mailbox
) -> None:
    with pytest.raises(ThreadNotFoundError) as unknown:
        await services.mail.thread_by_key(mailbox.tenant_id, mailbox.id, "0" * 32)
    assert (unknown.value.code, unknown.value.http_status) == ("thread_not_found", 404)
    assert "thread_key" in unknown.value.hint
    with pytest.raises(InputError):
        await services.mail.thread_by_key(mailbox.tenant_id, mailbox.id, "not-a-key")

    await services.mail.search(mailbox.tenant_id, mailbox.id, SearchQuery(subject="Angebot"))
    other, _ = await services.tenants.create_tenant("other")
    key = (await services.mail.search(mailbox.tenant_id, mailbox.id, SearchQuery())).items[0].thread_key
    assert key is not None
    with pytest.raises(NotFoundError) as foreign:
        await services.mail.thread_by_key(other.id, mailbox.id, key)
    assert foreign.value.code == "not_found"

    with pytest.raises(UnsupportedFeatureError) as refused:
        await services.mail.search(mailbox.tenant_id, mailbox.id, SearchQuery(flagged=True))
    assert (refused.value.code, refused.value.http_status) == ("unsupported_feature", 422)
