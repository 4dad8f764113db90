"""The IMAP half of a connection check: TCP, TLS, greeting, STARTTLS, sign-in, SELECT INBOX.

Drives :class:`mailport.imap.ImapClient` one step at a time on a socket connected to the
address the SSRF guard vetted (``connect_tcp(sock=…)``; the certificate is verified against
the host name, or against the server's pinned certificate). When a step fails in a way the client
alone cannot explain, it gathers the catalog's evidence: what a plaintext connection receives
(silence, TLS bytes, another service's banner) and the certificate the server really presents
(its names; the certificate itself, to show or pin).
"""

from __future__ import annotations

import asyncio
import ssl
from contextlib import suppress

from mailport.check.model import CheckCredentials, ServerTarget
from mailport.check.steps import (
    Deadline,
    StepRecorder,
    authentication_step,
    silent_greeting_failure,
    tls_step,
)
from mailport.check.tls import describe
from mailport.errors import MailportError
from mailport.imap import ImapClient
from mailport.net.guard import VettedHost, connect_vetted
from mailport.net.probe import peer_certificate
from mailport.net.trust import unverified_context
from mailport.servers import Security


def _client(vetted: VettedHost, target: ServerTarget, context: ssl.SSLContext, timeout: float) -> ImapClient:
    return ImapClient(
        vetted.host,
        vetted.port,
        security=target.security,
        ssl_context=None if target.security is Security.NONE else context,
        server_hostname=vetted.server_hostname,
        allow_plaintext=target.security is Security.NONE,
        connect_timeout=timeout,
        command_timeout=timeout,
    )


async def _starttls_certificate(vetted: VettedHost, target: ServerTarget, deadline: Deadline) -> bytes | None:
    """The certificate behind STARTTLS (read without verification, nothing sent after)."""
    timeout = deadline.for_step(5.0)
    client = _client(vetted, target, unverified_context(), timeout)
    try:
        async with asyncio.timeout(timeout):
            await client.connect_tcp(sock=await connect_vetted(vetted, timeout=timeout))
            await client.read_greeting()
            info = await client.starttls()
        return info.certificate
    except (OSError, TimeoutError, MailportError):
        return None
    finally:
        client.close()


async def _peer_certificate(vetted: VettedHost, target: ServerTarget, deadline: Deadline) -> bytes | None:
    if target.security is Security.STARTTLS:
        return await _starttls_certificate(vetted, target, deadline)
    try:
        return await peer_certificate(vetted, timeout=deadline.for_step(5.0))
    except (OSError, TimeoutError, MailportError):
        return None


def _listed(capabilities: frozenset[str]) -> str:
    return " ".join(sorted(capabilities))


def _mechanism(client: ImapClient, credentials: CheckCredentials) -> str:
    if credentials.password is not None:
        return "AUTHENTICATE PLAIN" if client.has("AUTH=PLAIN") else "LOGIN"
    if client.has("AUTH=XOAUTH2") or not client.has("AUTH=OAUTHBEARER"):
        return "XOAUTH2"
    return "OAUTHBEARER"


async def check_imap(
    rec: StepRecorder,
    vetted: VettedHost,
    target: ServerTarget,
    credentials: CheckCredentials,
    *,
    context: ssl.SSLContext,
    deadline: Deadline,
) -> None:
    """Run the IMAP steps after DNS, appending to ``rec``; stops at the first failing step."""
    username = target.username or credentials.username
    client = _client(vetted, target, context, deadline.step)
    try:
        # --- TCP
        started = rec.start()
        try:
            sock = await connect_vetted(vetted, timeout=deadline.for_step())
            await client.connect_tcp(sock=sock)
        except (OSError, TimeoutError, MailportError) as exc:
            rec.fail("tcp_connect", started, error=exc)
            return
        peer = sock.getpeername()
        rec.ok("tcp_connect", started, f"connected to {peer[0]} port {peer[1]}")

        # --- implicit TLS
        if target.security is Security.SSL:
            up = await tls_step(
                rec, "tls_handshake", rec.start(), client.tls_handshake, deadline,
                peer_certificate=lambda: _peer_certificate(vetted, target, deadline), success=describe,
            )  # fmt: skip
            if not up:
                return

        # --- greeting and capabilities
        started = rec.start()
        try:
            async with asyncio.timeout(deadline.for_step()):
                greeting = await client.read_greeting()
                caps = client.capabilities or await client.capability()
        except (OSError, TimeoutError, MailportError) as exc:
            client.close()
            await silent_greeting_failure(rec, vetted, target.security, exc, started, deadline)
            return
        rec.ok(
            "greeting",
            started,
            f"* {greeting.status} {greeting.text}".strip() + f"; capabilities: {_listed(caps)}",
        )

        # --- STARTTLS
        if target.security is Security.STARTTLS:
            started = rec.start()
            if not client.has("STARTTLS"):
                rec.fail("starttls", started)  # not offered: the catalog names the fix
                return
            up = await tls_step(
                rec, "starttls", started, client.starttls, deadline,
                peer_certificate=lambda: _peer_certificate(vetted, target, deadline),
                success=lambda info: describe(info) + f"; capabilities: {_listed(client.capabilities)}",
            )  # fmt: skip
            if not up:
                return

        # --- authentication
        mechanism = _mechanism(client, credentials)
        signed_in = await authentication_step(
            rec, "authentication", client, credentials, username, mechanism, deadline,
            success=f"signed in as {username} with {mechanism}",
        )  # fmt: skip
        if not signed_in:
            return

        # --- SELECT INBOX (read-only: EXAMINE)
        started = rec.start()
        try:
            async with asyncio.timeout(deadline.for_step()):
                selected = await client.select("INBOX", readonly=True)
        except (OSError, TimeoutError, MailportError) as exc:
            rec.fail("select", started, error=exc)
            return
        rec.ok(
            "select",
            started,
            f"INBOX: {selected.exists} message{'s' if selected.exists != 1 else ''}, "
            f"UIDVALIDITY {selected.uidvalidity}",
        )
        with suppress(MailportError, OSError, TimeoutError):
            async with asyncio.timeout(min(2.0, deadline.remaining() or 0.001)):
                await client.logout()
    finally:
        client.close()
