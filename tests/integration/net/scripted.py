"""Scripted IMAP and SMTP servers that answer with a provider's exact words.

The real providers cannot be reached from the test machine, so these small asyncio servers play
them: each answers the sign-in (or SELECT) with the text a provider really sends (quoted in
``tests/unit/check/test_troubleshoot.py`` with its source). The connection check's own tests can
point the check at them; here they prove the words survive the wire and are diagnosed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class IMAPScript:
    """What the scripted IMAP server says. ``login``/``authenticate``/``select`` are the tagged
    answer without the tag (``NO [ALERT] …``); an answer starting with ``BYE`` is sent untagged and
    the connection closed."""

    greeting: str = "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR] scripted server ready"
    capabilities: str = "IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR IDLE"
    login: str = "OK LOGIN completed"
    authenticate: str = "OK AUTHENTICATE completed"
    select: str = "OK [READ-WRITE] SELECT completed"
    commands: list[str] = field(default_factory=list)


@dataclass
class SMTPScript:
    """What the scripted SMTP server says; ``auth`` is the full reply (several lines allowed)."""

    greeting: str = "220 scripted.test ESMTP ready"
    extensions: tuple[str, ...] = ("AUTH PLAIN LOGIN XOAUTH2", "8BITMIME")
    auth: str = "235 2.7.0 Authentication successful"
    commands: list[str] = field(default_factory=list)


async def _imap_session(
    script: IMAPScript, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    def send(line: str) -> None:
        writer.write(line.encode() + b"\r\n")

    send(script.greeting)
    while line := (await reader.readline()).decode(errors="replace").rstrip("\r\n"):
        tag, _, rest = line.partition(" ")
        verb = rest.split(" ", 1)[0].upper()
        script.commands.append(verb)
        answer = None
        if verb == "CAPABILITY":
            send(f"* CAPABILITY {script.capabilities}")
            answer = "OK CAPABILITY completed"
        elif verb == "LOGIN":
            answer = script.login
        elif verb == "AUTHENTICATE":
            answer = script.authenticate
        elif verb in ("SELECT", "EXAMINE"):
            answer = script.select
        elif verb == "LOGOUT":
            send("* BYE logging out")
            answer = "OK LOGOUT completed"
        else:
            answer = f"BAD {verb} not scripted"
        if answer.startswith("BYE"):
            send(f"* {answer}")
            break
        send(f"{tag} {answer}")
        await writer.drain()
        if verb == "LOGOUT":
            break
    await writer.drain()
    writer.close()


async def _smtp_session(
    script: SMTPScript, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    def send(text: str) -> None:
        writer.write(text.encode() + b"\r\n")

    send(script.greeting)
    while line := (await reader.readline()).decode(errors="replace").rstrip("\r\n"):
        verb = line.split(" ", 1)[0].upper()
        script.commands.append(verb)
        if verb in ("EHLO", "HELO"):
            lines = ["scripted.test", *script.extensions]
            send("\r\n".join(f"250{'-' if i < len(lines) - 1 else ' '}{x}" for i, x in enumerate(lines)))
        elif verb == "AUTH":
            send(script.auth.replace("\n", "\r\n") if "\r\n" not in script.auth else script.auth)
        elif verb == "QUIT":
            send("221 2.0.0 bye")
            await writer.drain()
            break
        else:
            send("502 5.5.1 not scripted")
        await writer.drain()
    writer.close()


@asynccontextmanager
async def scripted_imap(script: IMAPScript) -> AsyncIterator[int]:
    server = await asyncio.start_server(lambda r, w: _imap_session(script, r, w), "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def scripted_smtp(script: SMTPScript) -> AsyncIterator[int]:
    server = await asyncio.start_server(lambda r, w: _smtp_session(script, r, w), "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
