"""The SMTP half of a connection check: TCP, TLS, greeting and EHLO, STARTTLS, AUTH.

Drives :class:`mailport.smtp.SmtpClient` step by step on a socket connected to the vetted
address (``sock=``, certificate verified against the host name). Nothing is sent: the check
stops after AUTH (and QUIT). For implicit TLS, aiosmtplib performs the handshake and reads the
``220`` greeting in one call; the context's ``on_handshake`` hook (``MailTrust.context``) tells
when the handshake ended, so the two are still reported (and diagnosed) as separate steps.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from contextlib import suppress

from mailport import sasl
from mailport.check.model import CheckCredentials, ServerTarget
from mailport.check.steps import Deadline, StepRecorder, authentication_step, plaintext_evidence, tls_step
from mailport.check.tls import describe
from mailport.errors import MailportError
from mailport.net.guard import VettedHost, connect_vetted
from mailport.net.probe import peer_certificate
from mailport.net.trust import unverified_context
from mailport.servers import Security
from mailport.smtp import SmtpClient

_SHOWN_EXTENSIONS = 12


def _client(
    vetted: VettedHost, target: ServerTarget, context: ssl.SSLContext, sock: socket.socket, timeout: float
) -> SmtpClient:
    return SmtpClient(
        vetted.host,
        vetted.port,
        security=target.security,
        ssl_context=context,
        allow_plaintext=target.security is Security.NONE,
        timeout=timeout,
        sock=sock,
        server_hostname=vetted.server_hostname,
    )


async def _peer_certificate(vetted: VettedHost, target: ServerTarget, deadline: Deadline) -> bytes | None:
    """The certificate the server presents, read without verification (nothing sent after)."""
    timeout = deadline.for_step(5.0)
    if target.security is Security.SSL:
        try:
            return await peer_certificate(vetted, timeout=timeout)
        except (OSError, TimeoutError, MailportError):
            return None
    client: SmtpClient | None = None
    try:
        async with asyncio.timeout(timeout):
            sock = await connect_vetted(vetted, timeout=timeout)
            client = _client(vetted, target, unverified_context(), sock, timeout)
            await client.greet()
            await client.ehlo()
            info = await client.starttls()
        return info.certificate if info else None
    except (OSError, TimeoutError, MailportError):
        return None
    finally:
        if client is not None:
            client.close()


def _extensions(extensions: dict[str, str]) -> str:
    shown = [f"{k.upper()} {v}".strip() for k, v in list(extensions.items())[:_SHOWN_EXTENSIONS]]
    return ", ".join(shown) or "none"


def _mechanism(client: SmtpClient, credentials: CheckCredentials) -> str:
    """The mechanism the sign-in step names (the client then sends only an advertised one)."""
    wanted = sasl.PASSWORD_MECHANISMS if credentials.password is not None else sasl.OAUTH_MECHANISMS
    return sasl.preferred_mechanism(wanted, client.auth_mechanisms)


async def check_smtp(
    rec: StepRecorder,
    vetted: VettedHost,
    target: ServerTarget,
    credentials: CheckCredentials,
    *,
    context: ssl.SSLContext,
    handshakes: list[float],
    deadline: Deadline,
) -> None:
    """Run the SMTP steps after DNS. ``context`` records each completed handshake's time in
    ``handshakes`` (``MailTrust.context(on_handshake=…)``)."""
    username = target.username or credentials.username
    # --- TCP
    started = rec.start()
    try:
        sock = await connect_vetted(vetted, timeout=deadline.for_step())
    except (OSError, TimeoutError, MailportError) as exc:
        rec.fail("tcp_connect", started, error=exc)
        return
    peer = sock.getpeername()
    rec.ok("tcp_connect", started, f"connected to {peer[0]} port {peer[1]}")
    client = _client(vetted, target, context, sock, deadline.step)
    try:
        # --- (implicit TLS and) the greeting
        started = rec.start()
        try:
            async with asyncio.timeout(deadline.for_step()):
                greeting = await client.greet()
        except (OSError, TimeoutError, MailportError) as exc:
            ended = rec.start()
            if target.security is Security.SSL and not handshakes:
                peer = lambda: _peer_certificate(vetted, target, deadline)  # noqa: E731
                await rec.fail_tls("tls_handshake", started, exc, peer, ended=ended)
                return
            if target.security is Security.SSL:
                rec.ok("tls_handshake", started, "TLS established", ended=handshakes[0])
                started = handshakes[0]
            evidence = None
            if target.security is not Security.SSL and not getattr(exc, "server_said", None):
                evidence = await plaintext_evidence(vetted, deadline)
            rec.fail(
                "smtp_ehlo",
                started,
                error=exc,
                received=evidence.received if evidence else None,
                probe=evidence.probe if evidence else None,
                ended=ended,
            )
            return
        if target.security is Security.SSL:
            ended = handshakes[0] if handshakes else rec.start()
            rec.ok("tls_handshake", started, describe(client.tls), ended=ended)
            started = ended

        # --- EHLO
        try:
            async with asyncio.timeout(deadline.for_step()):
                extensions = await client.ehlo()
        except (OSError, TimeoutError, MailportError) as exc:
            rec.fail("smtp_ehlo", started, error=exc)
            return
        rec.ok("smtp_ehlo", started, f"{greeting}; EHLO: {_extensions(extensions)}")

        # --- STARTTLS
        if target.security is Security.STARTTLS:
            started = rec.start()
            if "starttls" not in {k.lower() for k in extensions}:
                rec.fail("smtp_starttls", started)  # not offered
                return
            up = await tls_step(
                rec, "smtp_starttls", started, client.starttls, deadline,
                peer_certificate=lambda: _peer_certificate(vetted, target, deadline),
                success=lambda info: describe(info) + f"; EHLO: {_extensions(client.extensions)}",
            )  # fmt: skip
            if not up:
                return

        # --- AUTH
        mechanism = _mechanism(client, credentials)
        signed_in = await authentication_step(
            rec, "smtp_auth", client, credentials, username, mechanism, deadline,
            success=f"signed in as {username} with AUTH {mechanism}",
        )  # fmt: skip
        if not signed_in:
            return
        with suppress(MailportError, OSError, TimeoutError):
            async with asyncio.timeout(min(2.0, deadline.remaining() or 0.001)):
                await client.quit()
    finally:
        client.close()
