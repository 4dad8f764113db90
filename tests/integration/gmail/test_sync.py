"""Gmail ingestion without gaps, against the Gmail fake and the real service graph: every message
exactly once (by idempotency key) under each fault of the API — an expired token (401), 429 with
Retry-After, 403 rateLimitExceeded, an expired historyId (404) with mail arriving in the gap —
and across watched labels (INBOX + role:sent); ``mailbox.connected``; and the payload has
IMAP's keys with ``source.gmail``."""

from __future__ import annotations

import pytest

from mailport.crypto import Secret
from mailport.events import message_key
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from mailport.metrics import SYNC_RECOVERIES
from mailport.sync import Orchestrator
from tests.integration.gmail.sync_bed import (
    GmailBed,
    add,
    exactly_once,
    gmail_bed,
    gmail_services,
    running,
    wait_for,
)
from tests.integration.sync.conftest import make_message as imap_message
from tests.mailstack.dovecot import Dovecot

__all__ = ["gmail_bed", "gmail_services", "running"]  # fixtures


def recoveries() -> float:
    return SYNC_RECOVERIES.labels(connector="gmail_api", reason="history_expired")._value.get()


@pytest.mark.slow  # ~11 s: two Retry-After: 1 waits and 1 s polls
async def test_every_message_once_under_api_faults(gmail_bed: GmailBed, running: Orchestrator) -> None:
    fake = gmail_bed.fake
    mailbox, account = await gmail_bed.mailbox(check_interval=1)
    ids = [add(account, f"first {i}") for i in range(3)]
    await gmail_bed.wait_delivered(mailbox, ids)
    connected = await gmail_bed.events(mailbox.id, "mailbox.connected")
    assert len(connected) == 1 and connected[0].payload["push"] is False  # no topic: polled

    # an access token Gmail rejects: one forced refresh at the IdP, the request again
    fake.fail(401, 1, email=account.email)
    ids.append(add(account, "after a 401"))
    await gmail_bed.wait_delivered(mailbox, ids)

    # throttled: 429 with Retry-After, then 403 rateLimitExceeded (also inside the batch of gets)
    fake.fail(429, 2, email=account.email, retry_after=1)
    ids.append(add(account, "after a 429"))
    await gmail_bed.wait_delivered(mailbox, ids)
    fake.fail(403, 2, email=account.email, reason="rateLimitExceeded")
    ids.append(add(account, "after a 403"))
    await gmail_bed.wait_delivered(mailbox, ids)

    # the stored historyId expires while mail keeps arriving: every message of the gap once
    before = recoveries()
    watcher = running.watchers[mailbox.id]
    gap = [add(account, f"in the gap {i}") for i in range(4)]
    account.expire_history()
    gap.append(add(account, "after the expiry"))
    ids += gap
    keys = await gmail_bed.wait_delivered(mailbox, ids)
    exactly_once(keys, mailbox, ids)
    assert recoveries() >= before + 1
    health = await watcher.connector.health()
    assert health.details.get("history_recoveries") == "1", health.details
    assert not await gmail_bed.events(mailbox.id, "mailbox.reset")  # no epoch change, no reset

    # a message given the INBOX label later is new mail in INBOX; other labels' mail is not
    archived = add(account, "archived", ("UNREAD",))
    add(account, "in sent", ("SENT",))
    account.modify(archived, add=["INBOX"])
    ids.append(archived)
    keys = await gmail_bed.wait_delivered(mailbox, ids)
    exactly_once(keys, mailbox, ids)
    payload = (await gmail_bed.events(mailbox.id))[-1].payload
    assert payload["folder"] == "INBOX" and payload["connector"] == "gmail_api"
    assert payload["source"]["gmail"]["id"] == archived
    assert payload["source"]["gmail"]["label_ids"] and payload["source"]["gmail"]["thread_id"]
    assert payload["flags"] == []  # UNREAD: not \Seen


async def test_inbox_and_sent_are_watched_each_once(gmail_bed: GmailBed, running: Orchestrator) -> None:
    mailbox, account = await gmail_bed.mailbox(check_interval=1, folders=("INBOX", "role:sent"))
    inbox = [add(account, f"in {i}") for i in range(2)]
    sent = [add(account, f"out {i}", ("SENT",)) for i in range(2)]
    await gmail_bed.wait_delivered(mailbox, inbox)
    keys = await gmail_bed.wait_delivered(mailbox, sent, scope="SENT")
    expected = {message_key(mailbox.id, "INBOX", i) for i in inbox} | {
        message_key(mailbox.id, "SENT", i, "SENT") for i in sent
    }
    assert set(keys) == expected and all(n == 1 for n in keys.values())
    folders = {
        e.payload["source"]["gmail"]["id"]: e.payload["folder"] for e in await gmail_bed.events(mailbox.id)
    }
    assert {folders[i] for i in inbox} == {"INBOX"} and {folders[i] for i in sent} == {"SENT"}
    assert len(await gmail_bed.events(mailbox.id, "mailbox.connected")) == 1  # one per mailbox


async def test_payload_has_the_keys_of_an_imap_payload(
    gmail_bed: GmailBed, running: Orchestrator, dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    raw = imap_message("same message", "the same body")
    mailbox, account = await gmail_bed.mailbox(check_interval=1)
    gmail_id = account.add_message(raw, ("INBOX", "UNREAD"))
    await gmail_bed.wait_delivered(mailbox, [gmail_id])

    user, password = password_user
    imap_box = await gmail_bed.services.mailboxes.create(
        mailbox.tenant_id,
        NewMailbox(
            email=user,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", dovecot.imap_port, Security.NONE),
            password=Secret(password),
            settings=ProcessingSettings(check_interval=1),
        ),
    )
    client = await dovecot.client(user, password, command_timeout=30)
    try:
        await client.append_many("INBOX", [raw])
    finally:
        await client.logout()
    imap_events = await wait_for(lambda: gmail_bed.events(imap_box.id))
    gmail_payload = (await gmail_bed.events(mailbox.id))[0].payload
    imap_payload = imap_events[0].payload
    assert set(gmail_payload) == set(imap_payload)
    same = set(imap_payload) - {"id", "mailbox_id", "connector", "ref", "source", "flags"}
    assert {k: gmail_payload[k] for k in same} == {k: imap_payload[k] for k in same}
    assert gmail_payload["flags"] == [] and "\\Seen" not in imap_payload["flags"]  # unread in both
    assert set(gmail_payload["source"]) == {"gmail"}
    assert set(gmail_payload["source"]["gmail"]) == {"id", "thread_id", "label_ids", "history_id"}
    assert gmail_payload["connector"] == "gmail_api" and imap_payload["connector"] == "imap"
