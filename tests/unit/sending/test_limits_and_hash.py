"""The provider rate defaults and the mailbox's own rates (pure), and the request hash that
the Idempotency-Key rule compares."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from mailport.mailboxes.models import ProcessingSettings, Security, ServerSettings
from mailport.sending.draft import OutgoingAttachment
from mailport.sending.limits import Rate, provider_rate, rate_for
from mailport.sending.models import AttachmentRef, ReplyTo, SendingSettings, SendRequest
from mailport.sending.service import request_hash
from tests.connectors.mailbed import make_mailbox


def mailbox(
    email: str = "desk@example.test", *, smtp_host: str | None = None, provider: str | None = None, **rates
):
    box = make_mailbox("imap", email, "pw", 993)
    return dataclasses.replace(
        box,
        smtp=ServerSettings(smtp_host, 587, Security.STARTTLS) if smtp_host else None,
        provider_id=provider,
        settings=ProcessingSettings(sending=SendingSettings(**rates)),
    )


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (mailbox("ann@gmail.com", smtp_host="smtp.gmail.com"), Rate(per_day=500)),
        (mailbox("ann@example.com", smtp_host="smtp.gmail.com"), Rate(per_day=2000)),
        (mailbox("ann@example.com", provider="google-workspace"), Rate(per_day=2000)),
        (mailbox("ann@example.com", smtp_host="smtp.office365.com"), Rate(per_minute=30, per_day=10_000)),
        (mailbox("ann@example.com", provider="microsoft365"), Rate(per_minute=30, per_day=10_000)),
        (mailbox("ann@hotmail.com", smtp_host="smtp-mail.outlook.com"), Rate(per_day=300)),
        (mailbox("ann@example.com", smtp_host="mail.example.com"), Rate()),
    ],
)
def test_provider_defaults(box, expected: Rate) -> None:
    assert provider_rate(box) == expected
    assert rate_for(box) == expected


def test_the_mailbox_setting_wins_and_zero_means_no_limit() -> None:
    own = mailbox("ann@example.com", smtp_host="smtp.office365.com", rate_per_minute=5)
    assert rate_for(own) == Rate(per_minute=5, per_day=10_000)
    unlimited = mailbox("ann@gmail.com", rate_per_minute=0, rate_per_day=0)
    assert rate_for(unlimited) == Rate()


def test_request_hash_covers_every_field_and_the_bytes() -> None:
    base = SendRequest(to=("a@example.test",), subject="Hi", text="x")
    assert request_hash(base) == request_hash(SendRequest(to=("a@example.test",), subject="Hi", text="x"))
    variants = [
        dataclasses.replace(base, subject="Hi!"),
        dataclasses.replace(base, cc=("b@example.test",)),
        dataclasses.replace(base, send_at=datetime(2030, 1, 1, tzinfo=UTC)),
        dataclasses.replace(base, reply=ReplyTo("ref_x")),
        dataclasses.replace(base, reply=ReplyTo("ref_x", all=True)),
        dataclasses.replace(base, attachments=(AttachmentRef("ref_x", "1"),)),
        dataclasses.replace(base, attachments=(OutgoingAttachment("a", "text/plain", b"1"),)),
        dataclasses.replace(base, attachments=(OutgoingAttachment("a", "text/plain", b"2"),)),
        SendRequest(raw=b"From: a@b\r\n\r\nx"),
        SendRequest(raw=b"From: a@b\r\n\r\ny"),
    ]
    hashes = {request_hash(v) for v in variants} | {request_hash(base)}
    assert len(hashes) == len(variants) + 1
