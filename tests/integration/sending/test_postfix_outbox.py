"""Sending end to end through a real MTA: ``SendService`` queues, the send worker submits to
Postfix (SMTP AUTH checked by Dovecot), Postfix delivers into Dovecot, and the tests read the
result back over IMAP: the recipient's INBOX, the sender's Sent folder (exactly one copy), the
threads Dovecot builds (``THREAD REFERENCES``), and Postfix's refusals as ``message.send_failed``.
"""

from __future__ import annotations

import email
import smtplib
import uuid
from email import policy
from email.message import EmailMessage

from mailport.connectors.mail import ListQuery
from mailport.crypto import Secret
from mailport.events import EventType
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from mailport.sending.models import ReplyTo, SendRequest, SendState, SentCopyState
from mailport.sending.worker import SendWorker
from tests.integration.sending.outbox_bed import Box
from tests.integration.sending.postfix_bed import (
    Account,
    Imap,
    database_url,
    delivered,
    events_of,
    recipient,
    sender,
    settings,
    settled,
    threads,
    worker,
)
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.postfix import TEMPFAIL_PREFIX, Postfix

__all__ = ["database_url", "recipient", "sender", "settings", "worker"]


def parsed(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def sent_copies(dovecot: Dovecot, box: Box, message_id: str) -> list[tuple[bytes, str]]:
    """Each copy of ``message_id`` in the sender's Sent folder, with its flags."""
    with Imap(dovecot, box.email, box.password) as imap:
        imap.select("Sent")
        found = []
        for uid in imap.search("HEADER", "Message-ID", f'"{message_id}"'):
            flags = imap.command("FETCH", str(uid), "(FLAGS)")[0].decode()
            found.append((imap.raw(uid), flags))
        return found


async def test_a_new_message_arrives_and_is_filed_in_sent_exactly_once(
    sender: Box, recipient: Account, dovecot: Dovecot, worker: SendWorker
) -> None:
    request = SendRequest(
        to=(f"Rita <{recipient.email}>",),
        cc=(sender.email,),  # the sender gets it too: its INBOX copy is not its Sent copy
        subject="Quarterly numbers",
        text="Attached are the numbers.\n",
    )
    queued = (await sender.services.sending.send(sender.tenant_id, sender.mailbox_id, request)).send
    sent = await settled(sender, queued.id, copied=True)
    assert sent.state is SendState.SENT and sent.confirmed and sent.attempts == 1
    assert sent.smtp_reply is not None and sent.smtp_reply.startswith("250 2.0.0 Ok: queued as ")
    assert sent.refused == {} and sent.last_error is None

    raw = delivered(dovecot, recipient, queued.message_id)
    message = parsed(raw)
    assert message["Subject"] == "Quarterly numbers" and message["Message-ID"] == f"<{queued.message_id}>"
    assert message["From"].addresses[0].addr_spec == sender.email
    assert message["From"].addresses[0].display_name == "Support Desk"
    hops = [" ".join(str(h).split()) for h in message.get_all("Received", [])]
    assert "by mail.example.test with LMTP" in hops[0]  # Dovecot, from Postfix
    assert "by mx.example.test (Postfix) with ESMTPSA" in hops[1]  # Postfix, from mailport
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert body.replace("\r\n", "\n") == "Attached are the numbers.\n"
    delivered(dovecot, Account(sender.email, sender.password), queued.message_id)  # the Cc

    assert sent.sent_copy is SentCopyState.STORED and sent.sent_copy_ref is not None
    [(copy, flags)] = sent_copies(dovecot, sender, queued.message_id)
    assert "\\Seen" in flags
    assert parsed(copy)["Received"] is None  # the copy mailport stored, not a delivery
    assert parsed(copy)["Message-ID"] == f"<{queued.message_id}>"

    [event] = await events_of(sender.services, queued.id, EventType.MESSAGE_SENT)
    assert event["message_id"] == queued.message_id and event["smtp_reply"] == sent.smtp_reply
    assert event["confirmed"] is True and event["recipients"] == [recipient.email, sender.email]

    # Another worker pass finds nothing left to do: still one message, one copy.
    await worker.run_once()
    await worker.idle()
    assert len(sent_copies(dovecot, sender, queued.message_id)) == 1
    with Imap(dovecot, recipient.email, recipient.password) as imap:
        assert len(imap.by_message_id(queued.message_id)) == 1


async def test_a_reply_threads_with_the_original(
    sender: Box, recipient: Account, dovecot: Dovecot, postfix: Postfix, worker: SendWorker
) -> None:
    """Rita writes to the desk with Carl in Cc (through Postfix); the desk answers all. Carl's
    INBOX then holds both, and Dovecot's THREAD REFERENCES puts them in one thread."""
    carl = Account(*dovecot.dyn_user(f"c{uuid.uuid4().hex[:10]}"))
    root_id = f"{uuid.uuid4().hex}@example.test"  # an earlier message of the conversation
    original = EmailMessage()
    original["From"] = f"Rita <{recipient.email}>"
    original["To"] = f"Desk <{sender.email}>"
    original["Cc"] = carl.email
    original["Subject"] = "Order 1234 is late"
    original["Message-ID"] = original_id = f"<{uuid.uuid4().hex}@example.test>"
    original["References"] = f"<{root_id}>"
    original["In-Reply-To"] = f"<{root_id}>"
    original.set_content("Where is my order?\n")
    with smtplib.SMTP("127.0.0.1", postfix.submission_port, timeout=10) as client:
        client.starttls(context=postfix.tls_context())
        client.login(recipient.email, recipient.password)
        client.send_message(original)
    bare_id = original_id.strip("<>")
    delivered(dovecot, Account(sender.email, sender.password), bare_id)

    # The desk's mailport sees it in its INBOX and answers everyone, quoting it.
    async def inbox_ref() -> str:
        page = await sender.services.mail.list_messages(
            sender.tenant_id, sender.mailbox_id, ListQuery(folder="INBOX")
        )
        return next(
            m.ref.encode() for m in page.items if (m.envelope.message_id or "").strip("<>") == bare_id
        )

    ref = await inbox_ref()
    request = SendRequest(text="It left the warehouse today.\n", reply=ReplyTo(ref, all=True))
    queued = (await sender.services.sending.send(sender.tenant_id, sender.mailbox_id, request)).send
    sent = await settled(sender, queued.id)
    assert sent.state is SendState.SENT and sent.in_reply_to == bare_id
    assert sorted(sent.recipients) == sorted([recipient.email, carl.email])

    reply = parsed(delivered(dovecot, recipient, queued.message_id))
    assert reply["Subject"] == "Re: Order 1234 is late"
    assert reply["In-Reply-To"] == original_id
    assert reply["References"].split() == [f"<{root_id}>", original_id]  # RFC 5322 §3.6.4
    assert "> Where is my order?" in reply.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    delivered(dovecot, carl, queued.message_id)
    with Imap(dovecot, carl.email, carl.password) as imap:
        imap.select("INBOX")
        [first] = imap.search("HEADER", "Message-ID", f'"{bare_id}"')
        [second] = imap.search("HEADER", "Message-ID", f'"{queued.message_id}"')
        assert threads(imap.thread_references()) == [[first, second]]


async def test_a_recipient_postfix_refuses_fails_the_send_in_postfixs_words(
    sender: Box, dovecot: Dovecot, worker: SendWorker
) -> None:
    unknown = f"nosuch-{uuid.uuid4().hex[:6]}@example.test"
    request = SendRequest(to=(unknown,), subject="to nobody", text="x")
    queued = (await sender.services.sending.send(sender.tenant_id, sender.mailbox_id, request)).send
    failed = await settled(sender, queued.id, copied=True)
    assert failed.state is SendState.FAILED and failed.attempts == 1  # 5xx: never retried
    error = failed.last_error
    assert error is not None and error.smtp_code == 550 and not error.temporary
    words = f"5.1.1 <{unknown}>: Recipient address rejected: User unknown in virtual mailbox table"
    assert error.server_said is not None and words in error.server_said
    [event] = await events_of(sender.services, queued.id, EventType.MESSAGE_SEND_FAILED)
    assert event["error"]["smtp_code"] == 550 and words in event["error"]["server_said"]
    assert event["message_id"] == queued.message_id and event["attempts"] == 1
    assert await events_of(sender.services, queued.id, EventType.MESSAGE_SENT) == []
    assert (
        failed.sent_copy is not SentCopyState.STORED and sent_copies(dovecot, sender, queued.message_id) == []
    )


async def test_one_refused_recipient_among_others_is_reported_and_the_rest_delivered(
    sender: Box, recipient: Account, dovecot: Dovecot, worker: SendWorker
) -> None:
    unknown = f"nosuch-{uuid.uuid4().hex[:6]}@example.test"
    request = SendRequest(to=(recipient.email, unknown), subject="partly", text="x")
    queued = (await sender.services.sending.send(sender.tenant_id, sender.mailbox_id, request)).send
    sent = await settled(sender, queued.id)
    assert sent.state is SendState.SENT
    assert sent.refused == {
        unknown: f"550 5.1.1 <{unknown}>: Recipient address rejected: User unknown in virtual mailbox table"
    }
    delivered(dovecot, recipient, queued.message_id)
    [event] = await events_of(sender.services, queued.id, EventType.MESSAGE_SENT)
    assert event["refused"] == sent.refused


async def test_a_wrong_password_fails_the_send_as_invalid_credentials(
    sender: Box, recipient: Account, dovecot: Dovecot, postfix: Postfix, worker: SendWorker
) -> None:
    user, _ = dovecot.dyn_user(f"w{uuid.uuid4().hex[:10]}")
    mailbox = await sender.services.mailboxes.create(
        sender.tenant_id,
        NewMailbox(
            email=user,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", dovecot.imap_port, Security.NONE),
            smtp=ServerSettings("127.0.0.1", postfix.submission_port, Security.STARTTLS),
            password=Secret("wrong-password-77"),
            settings=ProcessingSettings(),
        ),
    )
    box = Box(sender.services, sender.tenant_id, mailbox.id, user, "wrong-password-77", dovecot)
    request = SendRequest(to=(recipient.email,), subject="never", text="x")
    queued = (await box.services.sending.send(box.tenant_id, box.mailbox_id, request)).send
    failed = await settled(box, queued.id)
    assert failed.state is SendState.FAILED and failed.attempts == 1  # never retried
    error = failed.last_error
    assert error is not None and error.code == "invalid_credentials" and not error.temporary
    assert "5.7.8 Error: authentication failed" in str(error.server_said)
    assert "wrong-password-77" not in str(error.to_json())
    [event] = await events_of(box.services, queued.id, EventType.MESSAGE_SEND_FAILED)
    assert event["error"]["code"] == "invalid_credentials"


async def test_a_4xx_from_postfix_is_retried_then_given_up_with_its_words(
    sender: Box, worker: SendWorker
) -> None:
    """The worker fixture allows 3 attempts, 0.2 s apart and doubling."""
    busy = f"{TEMPFAIL_PREFIX}-{uuid.uuid4().hex[:6]}@example.test"
    request = SendRequest(to=(busy,), subject="later", text="x")
    queued = (await sender.services.sending.send(sender.tenant_id, sender.mailbox_id, request)).send
    failed = await settled(sender, queued.id)
    assert failed.state is SendState.FAILED and failed.attempts == 3
    error = failed.last_error
    assert error is not None and error.smtp_code == 450 and error.code == "smtp_rejected"
    assert error.server_said is not None
    assert f"<{busy}>: Recipient address rejected: Mailbox busy, try again later" in error.server_said
    assert error.message.startswith("gave up after 3 attempts")
    [event] = await events_of(sender.services, queued.id, EventType.MESSAGE_SEND_FAILED)
    assert event["attempts"] == 3 and event["error"]["smtp_code"] == 450


async def test_the_same_idempotency_key_twice_sends_one_message(
    sender: Box, recipient: Account, dovecot: Dovecot, worker: SendWorker
) -> None:
    request = SendRequest(to=(recipient.email,), subject="once", text="only once\n")
    sending = sender.services.sending
    first = await sending.send(sender.tenant_id, sender.mailbox_id, request, idempotency_key="order-7")
    await settled(sender, first.send.id)
    again = await sending.send(sender.tenant_id, sender.mailbox_id, request, idempotency_key="order-7")
    assert again.replayed and again.send.id == first.send.id and again.send.state is SendState.SENT
    await worker.run_once()
    await worker.idle()
    delivered(dovecot, recipient, first.send.message_id)  # asserts exactly one copy
    with Imap(dovecot, recipient.email, recipient.password) as imap:
        imap.select("INBOX")
        assert len(imap.search("ALL")) == 1


async def test_a_draft_sent_through_postfix_leaves_drafts_and_lands_in_sent_once(
    sender: Box, recipient: Account, dovecot: Dovecot, worker: SendWorker
) -> None:
    drafts = sender.services.drafts
    draft = await drafts.create(
        sender.tenant_id,
        sender.mailbox_id,
        SendRequest(to=(recipient.email,), subject="Draft: offer", text="Our offer, as discussed.\n"),
    )
    assert draft.ref is not None
    with Imap(dovecot, sender.email, sender.password) as imap:
        assert len(imap.by_message_id(draft.message_id, draft.folder)) == 1
    queued = (await drafts.send(sender.tenant_id, sender.mailbox_id, draft.ref)).send
    assert queued.message_id == draft.message_id
    sent = await settled(sender, queued.id, copied=True)
    assert sent.state is SendState.SENT and sent.sent_copy is SentCopyState.STORED

    arrived = parsed(delivered(dovecot, recipient, draft.message_id))
    assert arrived["Subject"] == "Draft: offer"
    assert len(sent_copies(dovecot, sender, draft.message_id)) == 1
    with Imap(dovecot, sender.email, sender.password) as imap:
        assert imap.by_message_id(draft.message_id, draft.folder) == []  # deleted once sent
