"""Sending from a Graph mailbox through the outbox and the real send worker, against the fake
Graph: new messages with Bcc through ``sendMail`` (MIME), replies through ``createReply`` + send so
that they stay in the original's conversation, forwards, attachments, Graph filing the Sent copy
itself, throttling retried and refusals failed with Graph's words, and drafts (create, list, read,
replace, delete, send) kept in the Drafts folder."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import message_from_bytes

import pytest

from mailport.bootstrap import Services
from mailport.connectors.mail import ListQuery
from mailport.errors import MessageNotFoundError
from mailport.sending.draft import OutgoingAttachment
from mailport.sending.models import Forward, OutboundMessage, ReplyTo, SendRequest, SendState, SentCopyState
from mailport.sending.worker import SendWorker, retry_policy
from tests.fakes.graph import Account, GraphFake
from tests.fixtures.graph import MakeGraphMailbox, new_email
from tests.integration.sync.conftest import make_message


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """This is about Graph, not storage: one database (storage runs on both elsewhere)."""
    return sqlite_url


@dataclass
class Sender:
    services: Services
    tenant_id: str
    mailbox_id: str
    email: str
    account: Account
    fake: GraphFake

    async def send(self, request: SendRequest) -> str:
        return (await self.services.sending.send(self.tenant_id, self.mailbox_id, request)).send.id

    async def settled(self, send_id: str, *, timeout: float = 15.0) -> OutboundMessage:
        """The send once it is sent or failed (polled; the worker runs in the background)."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.services.sending.get(self.tenant_id, self.mailbox_id, send_id)
            if (
                found.state in (SendState.SENT, SendState.FAILED)
                and found.sent_copy is not SentCopyState.PENDING
            ):
                return found
            assert time.monotonic() < deadline, f"send {send_id} still {found.state}"
            await asyncio.sleep(0.05)

    def paths(self, marker: str) -> list[str]:
        return [f"{e.method} {e.path}" for e in self.fake.requests if marker in e.path]


@pytest.fixture
async def sender(
    graph_services: Services, graph_mailbox: MakeGraphMailbox, graph: GraphFake
) -> AsyncIterator[Sender]:
    made = await graph_mailbox(graph_services)
    worker = SendWorker(
        graph_services,
        poll_seconds=0.1,
        retry=retry_policy(first_seconds=0.1, max_attempts=3, give_up_hours=1),
    )
    worker.start()
    try:
        yield Sender(graph_services, made.mailbox.tenant_id, made.mailbox.id, made.email, made.account, graph)
    finally:
        await worker.stop()


def received(account: Account) -> list[bytes]:
    return [m.raw or account.mime(m) for m in account.in_folder("inbox")]


async def test_a_new_message_goes_through_sendmail_with_bcc_and_graph_files_the_copy(
    sender: Sender, graph: GraphFake
) -> None:
    bob, carol = graph.account(new_email()), graph.account(new_email())
    send_id = await sender.send(
        SendRequest(to=(bob.email,), bcc=(carol.email,), subject="Your booking", text="Room 12.\n")
    )
    done = await sender.settled(send_id)
    assert done.state is SendState.SENT and done.sent_copy is SentCopyState.SKIPPED
    assert "sendMail" in (done.smtp_reply or "")
    [posted] = [
        e
        for e in graph.requests
        if e.path.endswith("/sendMail")
        and e.status == 202
        and b"Your booking" in base64.b64decode(e.raw_body)
    ]
    mime = base64.b64decode(posted.raw_body)
    assert posted.content_type.startswith("text/plain")
    assert message_from_bytes(mime)["Bcc"] == carol.email
    [to_bob] = received(bob)
    assert message_from_bytes(to_bob)["Subject"] == "Your booking"
    assert len(received(carol)) == 1
    [copy] = sender.account.in_folder("sentitems")
    assert copy.subject == "Your booking" and copy.message_id.strip("<>") == done.message_id


async def test_a_reply_is_made_with_create_reply_and_stays_in_the_conversation(
    sender: Sender, graph: GraphFake
) -> None:
    bob = graph.account(new_email())
    original = make_message("Question", message_id="q1").replace(
        b"From: Sender <sender@example.test>", f"From: Bob <{bob.email}>".encode(), 1
    )
    original_id = sender.account.add(original, "inbox")
    [item] = (
        await sender.services.mail.list_messages(sender.tenant_id, sender.mailbox_id, ListQuery())
    ).items
    attachment = OutgoingAttachment("notes.txt", "text/plain", b"see notes\n")
    send_id = await sender.send(
        SendRequest(reply=ReplyTo(ref=item.ref.encode()), text="Here you are.", attachments=(attachment,))
    )
    done = await sender.settled(send_id)
    assert done.state is SendState.SENT, done.last_error
    assert "createReply" in (done.smtp_reply or "")
    assert any(p.endswith("/createReply") for p in sender.paths("/createReply"))
    assert any(p.endswith("/attachments") for p in sender.paths("/attachments"))
    [copy] = sender.account.in_folder("sentitems")
    assert copy.conversation_id == sender.account.messages[original_id].conversation_id
    assert copy.in_reply_to == "<q1@example.test>"
    assert copy.message_id.strip("<>") == done.message_id
    assert sender.account.in_folder("drafts") == []
    [reply] = received(bob)
    parsed = message_from_bytes(reply)
    assert parsed["Subject"] == "Re: Question" and parsed["In-Reply-To"] == "<q1@example.test>"
    assert [p.get_filename() for p in parsed.walk() if p.get_filename()] == ["notes.txt"]
    assert "Here you are." in (reply.decode("utf-8", "replace"))


async def test_a_reply_to_mail_the_mailbox_does_not_hold_goes_as_mime(
    sender: Sender, graph: GraphFake
) -> None:
    bob = graph.account(new_email())
    raw = (
        f"From: {sender.email}\r\nTo: {bob.email}\r\nSubject: Re: Elsewhere\r\n"
        "Message-ID: <x1@example.test>\r\nIn-Reply-To: <not-here@example.test>\r\n\r\nAnswer.\r\n"
    ).encode()
    done = await sender.settled(await sender.send(SendRequest(raw=raw)))
    assert done.state is SendState.SENT and "sendMail" in (done.smtp_reply or "")
    [delivered] = received(bob)
    assert message_from_bytes(delivered)["In-Reply-To"] == "<not-here@example.test>"


async def test_a_forward_carries_the_original(sender: Sender, graph: GraphFake) -> None:
    carol = graph.account(new_email())
    sender.account.add(make_message("Agenda", "Monday 10:00"), "inbox")
    [item] = (
        await sender.services.mail.list_messages(sender.tenant_id, sender.mailbox_id, ListQuery())
    ).items
    done = await sender.settled(
        await sender.send(SendRequest(to=(carol.email,), forward=Forward(ref=item.ref.encode()), text="FYI"))
    )
    assert done.state is SendState.SENT and done.subject == "Fwd: Agenda"
    [forwarded] = received(carol)
    parts = [p.get_content_type() for p in message_from_bytes(forwarded).walk()]
    assert "message/rfc822" in parts


async def test_throttling_is_retried_and_a_refusal_fails_with_graphs_words(
    sender: Sender, graph: GraphFake
) -> None:
    bob = graph.account(new_email())
    graph.faults.fail_next(429, 6, retry_after=0, path_contains="/sendMail")
    done = await sender.settled(await sender.send(SendRequest(to=(bob.email,), subject="later", text="x")))
    assert done.state is SendState.SENT and done.attempts == 2
    assert len(received(bob)) == 1
    graph.faults.fail_next(
        400, code="ErrorInvalidRecipients", message="Recipient is not valid.", path_contains="/sendMail"
    )
    failed = await sender.settled(await sender.send(SendRequest(to=(bob.email,), subject="never", text="x")))
    assert failed.state is SendState.FAILED and failed.attempts == 1
    assert failed.last_error is not None
    assert failed.last_error.code == "send_refused"
    assert "Recipient is not valid." in (failed.last_error.server_said or "")
    assert len(received(bob)) == 1


async def test_drafts_live_in_the_drafts_folder_and_are_sent_from_there(
    sender: Sender, graph: GraphFake
) -> None:
    bob = graph.account(new_email())
    drafts = sender.services.drafts
    stored = await drafts.create(
        sender.tenant_id, sender.mailbox_id, SendRequest(to=(bob.email,), subject="Draft one", text="v1")
    )
    assert stored.folder == "Drafts" and stored.ref is not None
    [kept] = sender.account.in_folder("drafts")
    assert kept.is_draft and kept.subject == "Draft one"
    page = await drafts.list(sender.tenant_id, sender.mailbox_id)
    assert [(s.envelope.subject, "draft" in s.flags) for s in page.page.items] == [("Draft one", True)]
    view = await drafts.get(sender.tenant_id, sender.mailbox_id, stored.ref)
    assert view.message.text is not None and view.message.text.strip() == "v1"
    replaced = await drafts.replace(
        sender.tenant_id,
        sender.mailbox_id,
        stored.ref,
        SendRequest(to=(bob.email,), bcc=(sender.email,), subject="Draft one", text="v2"),
    )
    assert replaced.ref is not None and replaced.ref != stored.ref
    [kept] = sender.account.in_folder("drafts")
    assert "v2" in (kept.raw or b"").decode()
    with pytest.raises(MessageNotFoundError):
        await drafts.get(sender.tenant_id, sender.mailbox_id, stored.ref)
    queued = await drafts.send(sender.tenant_id, sender.mailbox_id, replaced.ref)
    done = await sender.settled(queued.send.id)
    assert done.state is SendState.SENT
    deadline = time.monotonic() + 10
    while sender.account.in_folder("drafts"):  # deleted by the worker once sent
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    [delivered] = received(bob)
    assert message_from_bytes(delivered)["Subject"] == "Draft one"
    other = await drafts.create(
        sender.tenant_id, sender.mailbox_id, SendRequest(to=(bob.email,), subject="x", text="y")
    )
    assert other.ref is not None
    await drafts.delete(sender.tenant_id, sender.mailbox_id, other.ref)
    assert sender.account.in_folder("drafts") == [] and sender.account.in_folder("deleteditems") == []
