"""Same output as IMAP: one RFC 5322 message ingested through every connector gives one
``message.received`` payload, field for field.

The message goes, byte for byte, into a mailbox on the real Dovecot (``imap``), an account of
the fake Gmail API (``gmail_api``) and one of the fake Graph (``graph``), read and flagged in
each (``\\Seen``, ``\\Flagged``, as IMAP spells them: docs/messages.md), all three read by one
service's orchestrator, as ``mailport serve`` runs them. What may differ is where the message
is: ``id``, ``ref``, ``connector``, ``source`` (the provider's own ids, under ``source.imap`` /
``source.gmail`` / ``source.graph``) and ``mailbox_id`` (three mailboxes); everything the host
application reads about the message itself must be equal (flags as a set: their order is the
server's).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mailport.bootstrap import Services, build
from mailport.config import Settings
from mailport.sync import Orchestrator, WatcherOptions
from tests.fakes.gmail import GmailFake
from tests.fakes.graph import GraphFake
from tests.fixtures.gmail import configure_gmail, connect_gmail_mailbox, gmail_provider_overrides
from tests.fixtures.graph import GRAPH_SCOPES, connect_graph_mailbox, use_graph
from tests.integration.mail.conftest import add_mailbox
from tests.integration.sync.conftest import all_events, wait_for
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.idp import MockIdP

WHERE = frozenset({"id", "ref", "connector", "source", "mailbox_id"})  # where it is, not what it is


def rich_message() -> bytes:
    """A message with most of what the payload describes: encoded names and subject, every
    address header, a reply's threading headers, text and HTML, an inline image and a PDF."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "Jürgen Müller <juergen@example.com>"
    msg["Sender"] = "Assistant <assistant@example.com>"
    msg["Reply-To"] = "Support <support@example.com>"
    msg["To"] = "Alice <alice@example.com>, bob@example.com"
    msg["Cc"] = "Carol <carol@example.com>"
    msg["Subject"] = "Re: Grüße — invoice 2024-001"
    msg["Date"] = "Mon, 05 Feb 2024 09:30:00 +0100"
    msg["Message-ID"] = f"<same-{uuid.uuid4().hex[:12]}@example.com>"
    msg["In-Reply-To"] = "<root@example.com>"
    msg["References"] = "<root@example.com> <second@example.com>"
    msg.set_content("Viele Grüße,\nthe invoice is attached.\n")
    msg.add_alternative(
        '<p>Viele Grüße, the invoice is attached.</p><img src="cid:logo@example.com">', subtype="html"
    )
    msg.get_payload()[1].add_related(b"\x89PNG\r\n\x1a\n", "image", "png", cid="<logo@example.com>")
    msg.add_attachment(
        b"%PDF-1.4\n%same output\n", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    return msg.as_bytes()  # CRLF line ends (policy.SMTP): what every server stores and serves


@pytest.fixture
async def services(
    settings: Settings, idp: MockIdP, gmail_fake: GmailFake, graph_fake: GraphFake, tmp_path: Path
) -> AsyncIterator[Services]:
    """One service reading all three: Google's Gmail API and Microsoft's Graph on the fakes."""
    overrides = gmail_provider_overrides(idp, gmail_fake)
    overrides["microsoft"]["apis"] = {"graph": {"base_url": graph_fake.url, "scopes": list(GRAPH_SCOPES)}}
    providers = tmp_path / "oauth-providers.json"
    providers.write_text(json.dumps(overrides))
    use_graph(configure_gmail(settings, providers), providers)
    settings.public_url = ""  # no Graph subscription: its first delta round ingests
    built = await build(settings, migrate=True)
    try:
        yield built
    finally:
        await built.aclose()


async def imap_mailbox(services: Services, dovecot: Dovecot, tenant_id: str, raw: bytes) -> str:
    """A mailbox on the real Dovecot holding ``raw``, read and flagged; its id."""
    user, password = dovecot.dyn_user(f"s{uuid.uuid4().hex[:10]}")
    mailbox_id = await add_mailbox(services, tenant_id, dovecot, user, password)
    await asyncio.to_thread(dovecot.deliver, user, raw)
    await asyncio.to_thread(
        dovecot.doveadm, "flags", "add", "-u", user, "\\Seen \\Flagged", "mailbox", "INBOX", "all"
    )
    return mailbox_id


async def received(services: Services, mailbox_id: str) -> dict[str, Any]:
    async def one() -> list[Any]:
        return await all_events(services, mailbox_id=mailbox_id, type="message.received")

    events = await wait_for(one, timeout=30, interval=0.05)
    assert len(events) == 1, [e.payload.get("subject") for e in events]
    payload: dict[str, Any] = events[0].payload
    return payload


async def test_one_message_gives_the_same_payload_through_every_connector(
    services: Services, dovecot: Dovecot, idp: MockIdP, gmail_fake: GmailFake, graph_fake: GraphFake
) -> None:
    raw = rich_message()
    tenant, _key = await services.tenants.create_tenant("same-output")
    imap = await imap_mailbox(services, dovecot, tenant.id, raw)
    gmail, gmail_account = await connect_gmail_mailbox(services, idp, gmail_fake, tenant_id=tenant.id)
    gmail_account.add_message(raw, ("INBOX", "STARRED"))  # read and starred
    graph = await connect_graph_mailbox(services, graph_fake, idp, tenant_id=tenant.id)
    graph.account.add(raw, "inbox", is_read=True, flagged=True)
    # Delivered after the mailboxes were made, before they were first read: the first sync of each
    # takes in what arrived since the mailbox was added.
    orchestrator = Orchestrator(
        services,
        reconcile_interval=0.2,
        stagger_seconds=0.0,
        options=WatcherOptions(backoff_base=0.2, backoff_cap=1.0, auth_retry_seconds=600),
    )
    await orchestrator.start()
    try:
        payloads = {
            "imap": await received(services, imap),
            "gmail_api": await received(services, gmail.id),
            "graph": await received(services, graph.mailbox.id),
        }
    finally:
        await orchestrator.stop()

    for connector, payload in payloads.items():
        assert payload["connector"] == connector
        assert payload["ref"] and payload["id"].startswith("msg_")
    assert payloads["imap"]["mailbox_id"] == imap
    assert payloads["gmail_api"]["mailbox_id"] == gmail.id
    assert payloads["graph"]["mailbox_id"] == graph.mailbox.id
    assert list(payloads["imap"]["source"]) == ["imap"]
    assert list(payloads["gmail_api"]["source"]) == ["gmail"]
    assert list(payloads["graph"]["source"]) == ["graph"]
    assert set(payloads["gmail_api"]["source"]["gmail"]) == {"id", "thread_id", "label_ids", "history_id"}
    assert set(payloads["graph"]["source"]["graph"]) == {"id", "conversation_id", "folder_id", "change_key"}

    # Flags come in the order the server lists them (Dovecot: \Flagged \Seen): compared as a set.
    what = {
        name: {k: sorted(v) if k == "flags" else v for k, v in p.items() if k not in WHERE}
        for name, p in payloads.items()
    }
    assert list(payloads["gmail_api"]) == list(payloads["imap"]) == list(payloads["graph"])  # keys, in order
    for name in ("gmail_api", "graph"):
        differing = {
            k: (what["imap"][k], what[name][k]) for k in what["imap"] if what["imap"][k] != what[name][k]
        }
        assert not differing, f"{name} differs from imap (imap, {name}): {differing}"
    # The message was read, not guessed: the parsed fields are the message's.
    assert what["imap"]["subject"] == "Re: Grüße — invoice 2024-001"
    assert what["imap"]["folder"] == "INBOX" and what["imap"]["flags"] == ["\\Flagged", "\\Seen"]
    assert "invoice.pdf" in [a["filename"] for a in what["imap"]["attachments"]]
    assert what["imap"]["size"] == len(raw) and not what["imap"]["oversized"]
