"""Beds of the Sent copy and drafts tests: the connector bed (tests/connectors/mailbed.py) over
both Dovecot layouts, and a "bare" Dovecot of each layout that neither marks folders
(no SPECIAL-USE) nor creates Sent, Drafts, Trash and Junk by itself — a server where the Sent
folder is found by its name only, or is missing until mailport creates it."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.connectors.mailbed import MailBed, make_bed
from tests.mailstack.dovecot import Dovecot

LAYOUTS = ["imap", "imap-dotted"]
_MAILBOX_BLOCK = re.compile(r"^  mailbox \w+ \{\n(?:    .*\n)*?  \}\n", re.MULTILINE)


class BareDovecot(Dovecot):
    """Dovecot without the special-use folders of the standard bed."""

    def render(self) -> str:
        rendered = _MAILBOX_BLOCK.sub("", super().render())
        assert "special_use" not in rendered
        return rendered


@pytest.fixture(scope="session")
def bare_dovecots(mail_root: Path) -> Iterator[dict[str, Dovecot]]:
    servers: dict[str, Dovecot] = {
        "imap": BareDovecot(mail_root / "dovecot-bare"),
        "imap-dotted": BareDovecot(
            mail_root / "dovecot-bare-dotted", namespace_prefix="INBOX.", separator="."
        ),
    }
    started: list[Dovecot] = []
    try:
        for server in servers.values():
            started.append(server.start())
        yield servers
    finally:
        for server in started:
            server.stop()


@pytest.fixture(params=LAYOUTS)
async def bed(request: pytest.FixtureRequest) -> AsyncIterator[MailBed]:
    """A connected connector over a fresh mailbox of the standard Dovecot (Sent marked \\Sent)."""
    async for made in make_bed(request.param, request):
        yield made


@pytest.fixture(params=LAYOUTS)
async def bare_bed(
    request: pytest.FixtureRequest, bare_dovecots: dict[str, Dovecot]
) -> AsyncIterator[MailBed]:
    """The same over a bare Dovecot: no folder but INBOX until someone creates one."""
    from mailport.connectors import registry
    from tests.connectors.mailbed import make_mailbox

    dovecot = bare_dovecots[request.param]
    user, password = dovecot.dyn_user(f"b{uuid.uuid4().hex[:10]}")
    mailbox = make_mailbox("imap", user, password, dovecot.imap_port)
    other = await dovecot.client(user, password)
    prefix, delimiter = ("INBOX.", ".") if request.param == "imap-dotted" else ("", "/")
    made = MailBed(
        request.param,
        registry.create(mailbox, registry.ConnectorContext()),
        prefix,
        delimiter,
        other=other,
        dovecot=dovecot,
        user=user,
    )
    await made.connector.connect()
    try:
        yield made
    finally:
        await made.connector.disconnect()
        await other.logout()


def message(subject: str = "Hello", *, message_id: str | None = None) -> tuple[bytes, str]:
    """A small message and its Message-ID (without angle brackets)."""
    mid = message_id or f"{uuid.uuid4().hex}@copies.example.test"
    raw = (
        f"From: Support <support@example.test>\r\nTo: ann@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{mid}>\r\nDate: Sat, 05 Dec 2026 03:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nHi Ann,\r\nthe answer.\r\n"
    ).encode()
    return raw, mid
