"""The POP3 half of a connection check: TCP, TLS, greeting, CAPA, STLS, sign-in, UIDL, STAT.

Drives :class:`mailport.pop3.Pop3Client` one step at a time, like the IMAP check drives its
client, against the addresses the DNS step vetted (the client's guard is pinned to them, so
the host is not resolved a second time). UIDL is a step of its own because mailport's POP3
connector remembers messages by their unique ids: a server without UIDL cannot serve a
mailbox (``uidl_unsupported``). STAT reports what the maildrop holds (messages and octets).

When a step fails in a way the client alone cannot explain, the evidence is gathered as for
IMAP: what a plaintext connection receives, and the certificate the server really presents
(behind STLS too, read over a throw-away unverified connection that sends nothing after).
"""

from __future__ import annotations

import asyncio
import ssl
from contextlib import suppress
from typing import Literal

from mailport.check.model import CheckCredentials, ServerTarget
from mailport.check.steps import (
    Deadline,
    StepRecorder,
    authentication_step,
    silent_greeting_failure,
    tls_step,
)
from mailport.errors import MailportError, UidlUnsupportedError
from mailport.net.guard import HostGuard, VettedHost, connect_vetted
from mailport.net.probe import peer_certificate
from mailport.net.trust import unverified_context
from mailport.pop3 import Pop3Client
from mailport.servers import Security

_CHECKED = (OSError, TimeoutError, MailportError)


class _VettedGuard(HostGuard):
    """A guard that answers with the host the check's DNS step already vetted: the client then
    connects to exactly those addresses (a second lookup could answer differently)."""

    def __init__(self, vetted: VettedHost) -> None:
        super().__init__()
        self._vetted = vetted

    async def vet(self, host: str, port: int, *, field: str = "host") -> VettedHost:
        return self._vetted


def _client(vetted: VettedHost, target: ServerTarget, context: ssl.SSLContext, timeout: float) -> Pop3Client:
    return Pop3Client(
        vetted.host,
        vetted.port,
        security=target.security,
        ssl_context=None if target.security is Security.NONE else context,
        server_hostname=vetted.server_hostname,
        allow_plaintext=target.security is Security.NONE,
        connect_timeout=timeout,
        command_timeout=timeout,
        guard=_VettedGuard(vetted),
    )


async def _stls_certificate(vetted: VettedHost, deadline: Deadline) -> bytes | None:
    """The certificate behind STLS, read without verification (nothing is sent after it)."""
    timeout = deadline.for_step(5.0)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(sock=await connect_vetted(vetted, timeout=timeout))
            if not (await reader.readline()).startswith(b"+OK"):
                return None
            writer.write(b"STLS\r\n")
            if not (await reader.readline()).startswith(b"+OK"):
                return None
            await writer.start_tls(unverified_context(), server_hostname=vetted.server_hostname)
            tls = writer.get_extra_info("ssl_object")
            return tls.getpeercert(binary_form=True) if tls is not None else None
    except (OSError, TimeoutError, ssl.SSLError, MailportError):
        return None
    finally:
        if writer is not None:
            writer.close()


async def _peer_certificate(vetted: VettedHost, target: ServerTarget, deadline: Deadline) -> bytes | None:
    if target.security is Security.STARTTLS:
        return await _stls_certificate(vetted, deadline)
    try:
        return await peer_certificate(vetted, timeout=deadline.for_step(5.0))
    except _CHECKED:
        return None


def _listed(capabilities: dict[str, tuple[str, ...]]) -> str:
    return ", ".join(" ".join((name, *args)) for name, args in sorted(capabilities.items()))


def _mechanism(client: Pop3Client, credentials: CheckCredentials) -> str:
    offered = client.sasl_mechanisms
    if credentials.password is not None:
        return "AUTH PLAIN" if "PLAIN" in offered else "USER/PASS"
    return "XOAUTH2" if "XOAUTH2" in offered or "OAUTHBEARER" not in offered else "OAUTHBEARER"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


async def check_pop3(
    rec: StepRecorder,
    vetted: VettedHost,
    target: ServerTarget,
    credentials: CheckCredentials,
    *,
    context: ssl.SSLContext,
    deadline: Deadline,
) -> None:
    """Run the POP3 steps after DNS, appending to ``rec``; stops at the first failing step."""
    username = target.username or credentials.username
    client = _client(vetted, target, context, deadline.step)
    try:
        # --- TCP
        started = rec.start()
        try:
            async with asyncio.timeout(deadline.for_step()):
                await client.connect_tcp()
        except _CHECKED as exc:
            rec.fail("tcp_connect", started, error=exc)
            return
        rec.ok(
            "tcp_connect", started, f"connected to {', '.join(map(str, vetted.addresses))} port {vetted.port}"
        )

        # --- implicit TLS (POP3S)
        if target.security is Security.SSL and not await _tls(
            rec, "tls_handshake", client, vetted, target, deadline
        ):
            return

        # --- greeting
        started = rec.start()
        try:
            async with asyncio.timeout(deadline.for_step()):
                greeting = await client.read_greeting()
        except _CHECKED as exc:
            client.close()
            await silent_greeting_failure(rec, vetted, target.security, exc, started, deadline)
            return
        rec.ok("greeting", started, greeting.line)

        # --- CAPA (RFC 2449; optional: an RFC 1939 server answers -ERR)
        started = rec.start()
        try:
            async with asyncio.timeout(deadline.for_step()):
                caps = await client.capa()
        except _CHECKED as exc:
            rec.fail("pop3_capa", started, error=exc)
            return
        rec.ok(
            "pop3_capa",
            started,
            _listed(caps) if caps else "no CAPA (an RFC 1939 server): capabilities unknown",
        )

        # --- STLS
        if target.security is Security.STARTTLS:
            if caps and not client.has("STLS"):
                rec.fail("pop3_stls", rec.start())  # not offered: the catalogue names the fix
                return
            if not await _tls(rec, "pop3_stls", client, vetted, target, deadline):
                return

        # --- sign-in
        mechanism = _mechanism(client, credentials)
        signed_in = await authentication_step(
            rec, "pop3_auth", client, credentials, username, mechanism, deadline,
            success=f"signed in as {username} with {mechanism}",
        )  # fmt: skip
        if not signed_in:
            return

        # --- UIDL: the connector's cursor
        started = rec.start()
        if caps and not client.has("UIDL"):
            rec.fail_with("pop3_uidl", started, _no_uidl(client, "CAPA does not list UIDL"))
            return
        try:
            async with asyncio.timeout(deadline.for_step()):
                ids = await client.uidl()
        except _CHECKED as exc:
            said = getattr(exc, "server_said", None)
            if isinstance(exc, MailportError) and said and said.startswith("-ERR"):
                rec.fail_with("pop3_uidl", started, _no_uidl(client, f"UIDL refused: {said}", said=said))
            else:
                rec.fail("pop3_uidl", started, error=exc)
            return
        rec.ok("pop3_uidl", started, f"UIDL lists {_plural(len(ids), 'unique id')}")

        # --- STAT: what the maildrop holds
        started = rec.start()
        try:
            async with asyncio.timeout(deadline.for_step()):
                count, octets = await client.stat()
        except _CHECKED as exc:
            rec.fail("pop3_stat", started, error=exc)
            return
        rec.ok("pop3_stat", started, f"maildrop: {_plural(count, 'message')}, {_plural(octets, 'octet')}")
        with suppress(*_CHECKED):
            async with asyncio.timeout(min(2.0, deadline.remaining() or 0.001)):
                await client.quit()
    finally:
        client.close()


def _no_uidl(client: Pop3Client, why: str, *, said: str | None = None) -> UidlUnsupportedError:
    return UidlUnsupportedError(f"{client.where}: the server does not support UIDL ({why})", server_said=said)


async def _tls(
    rec: StepRecorder,
    step: Literal["tls_handshake", "pop3_stls"],
    client: Pop3Client,
    vetted: VettedHost,
    target: ServerTarget,
    deadline: Deadline,
) -> bool:
    """Implicit TLS or STLS (then CAPA again), with the certificate evidence on a refusal."""
    handshake = client.tls_handshake if step == "tls_handshake" else client.stls

    async def run() -> None:
        await handshake()

    def success(_: object) -> str:
        caps = client.capabilities if step == "pop3_stls" else {}
        return "TLS established" + (f"; capabilities: {_listed(caps)}" if caps else "")

    return await tls_step(
        rec, step, rec.start(), run, deadline,
        peer_certificate=lambda: _peer_certificate(vetted, target, deadline), success=success,
    )  # fmt: skip
