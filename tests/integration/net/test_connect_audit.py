"""At run time, every socket mailport connects is connected by ``mailport.net``.

A ``socket.connect`` audit hook (PEP 578) records, for each connection made while a test
records, the innermost mailport source file on the stack. Real flows then run against the bed —
the watcher (IMAP), SMTP, a connection check, an OAuth token request, a webhook POST — and every
connection must come from ``mailport/net/`` (or the database layer, whose URL is the
operator's). A client added later that connects any other way shows up here by file name; the
static twin of this test is ``tests/unit/net/test_no_bypass.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailport.bootstrap import Services
from mailport.check.model import CheckCredentials, ServerTarget
from mailport.check.runner import ConnectionChecker
from mailport.config import Settings
from mailport.crypto import Secret
from mailport.delivery.sender import WebhookSender
from mailport.errors import OAuthInvalidGrantError
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from mailport.oauth.providers import MailServer, OAuthApp, OAuthProvider
from mailport.smtp import SmtpClient
from mailport.sync import Orchestrator, WatcherOptions
from tests.fixtures.api import TenantHandle
from tests.fixtures.dns import LocalDNSServer
from tests.integration.sync.conftest import wait_for
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.idp import MockIdP
from tests.mailstack.smtp import SubmissionServer

MAILPORT = str(Path(__import__("mailport").__file__).resolve().parent) + "/"
ALLOWED_SOURCES = ("net/", "store/")  # the connect module; the database (operator's URL)
NAME = "bed.allowed.test"

_recording: list[tuple[str, Any]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or _recording is None:
        return
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(MAILPORT):
            _recording.append((filename.removeprefix(MAILPORT), args[1]))
            return
        frame = frame.f_back  # type: ignore[assignment]


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only inside `connects`


@pytest.fixture
def connects() -> Iterator[list[tuple[str, Any]]]:
    global _recording
    _recording = []
    try:
        yield _recording
    finally:
        _recording = None


@pytest.fixture
def settings(settings: Settings, dns_server: LocalDNSServer) -> Settings:
    dns_server.add(f"{NAME}.", "A", "127.0.0.1")
    return settings.model_copy(
        update={
            "dns_nameservers": [dns_server.nameserver],
            "allowed_hosts": [NAME],
            "allow_private_hosts": False,
        }
    )


async def test_every_connection_of_real_flows_is_made_by_mailport_net(
    services: Services,
    tenant: TenantHandle,
    dovecot: Dovecot,
    smtp: SubmissionServer,
    idp: MockIdP,
    password_user: tuple[str, str],
    connects: list[tuple[str, Any]],
) -> None:
    user, password = password_user

    # the watcher: IMAP
    mailbox = await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email=user,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings(NAME, dovecot.imap_port, Security.NONE),
            password=Secret(password),
            settings=ProcessingSettings(check_interval=60),
        ),
    )
    orchestrator = Orchestrator(services, reconcile_interval=0.1, stagger_seconds=0, options=WatcherOptions())
    await orchestrator.start()
    try:

        async def connected() -> bool:
            return (await services.mailboxes.get(tenant.id, mailbox.id)).health.status.value == "connected"

        await wait_for(connected, timeout=10)
    finally:
        await orchestrator.stop()

    # SMTP, as a library caller with the service's guard
    client = SmtpClient(NAME, smtp.port, security="plain", allow_plaintext=True, guard=services.guard)
    await client.connect()
    await client.quit()

    # a connection check (IMAP and SMTP)
    result = await ConnectionChecker(services.guard, timeout=10).check(
        ServerTarget(NAME, dovecot.imap_port, "none"),
        ServerTarget(NAME, smtp.port, "none"),
        CheckCredentials(user, password=Secret(password)),
    )
    assert result.imap.steps and result.smtp is not None and result.smtp.steps

    # an OAuth token request (the IdP refuses the made-up refresh token: the request was made)
    provider = OAuthProvider(
        key="bed",
        name="Bed",
        authorization_endpoint=f"http://{NAME}:{idp.port}/google/auth",
        token_endpoint=f"http://{NAME}:{idp.port}/google/token",
        scopes=["mail"],
        imap=MailServer(host=NAME, port=993),
    )
    with pytest.raises(OAuthInvalidGrantError):
        await services.oauth.oauth.client.refresh(
            provider, OAuthApp("bed", "test-client", Secret("test-secret")), Secret("no-such-token")
        )

    # a webhook POST (the IdP answers 404: the request was made)
    sender = WebhookSender(services.guard, timeout=5)
    try:
        outcome = await sender.post(f"http://{NAME}:{idp.port}/hook", b"{}", {})
    finally:
        await sender.aclose()
    assert outcome.result == "http_error", outcome

    outside = [(source, address) for source, address in connects if not source.startswith(ALLOWED_SOURCES)]
    assert not outside, f"connections opened outside mailport.net: {outside}"
    ports = {address[1] for source, address in connects if source == "net/guard.py"}
    assert {dovecot.imap_port, smtp.port, idp.port} <= ports  # the hook saw the flows' connections


async def test_the_hook_names_a_connection_made_elsewhere_in_mailport(
    connects: list[tuple[str, Any]], idp: MockIdP
) -> None:
    """The recorder itself: code compiled as a mailport module that connects on its own is seen."""
    code = compile(
        "import socket\nwith socket.socket() as s:\n    s.connect(address)\n",
        MAILPORT + "rogue/client.py",
        "exec",
    )
    exec(code, {"address": ("127.0.0.1", idp.port)})
    assert connects == [("rogue/client.py", ("127.0.0.1", idp.port))]
