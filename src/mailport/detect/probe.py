"""Probe a host for IMAP, POP3 or SMTP: greeting and capabilities only, never a login.

Written by hand on asyncio streams because what we need is tiny (read a greeting, ask
CAPABILITY / CAPA / EHLO, maybe STARTTLS / STLS, hang up) and must report *what the server said*
(STARTTLS offered, AUTH mechanisms, LOGINDISABLED, certificate verdict) rather than
succeed or fail as a full client library would. Certificates are always verified; a failed
verification is reported, never ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from typing import Literal

from mailport.errors import MailportError
from mailport.net.connect import open_stream
from mailport.net.guard import VettedHost
from mailport.net.trust import MailTrust
from mailport.servers import Security

Protocol = Literal["imap", "smtp", "pop3"]
MAX_LINES = 200


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    protocol: Protocol
    host: str
    port: int
    security: Security


@dataclass(frozen=True, slots=True)
class ProbeResult:
    target: ProbeTarget
    reachable: bool = False  # a TCP connection (and TLS handshake, if any) got somewhere
    tls_verified: bool = False
    greeting: str = ""
    capabilities: tuple[str, ...] = ()
    auth_mechanisms: tuple[str, ...] = ()
    starttls: bool = False  # STARTTLS (POP3: STLS) offered in clear text
    login_disabled: bool = False  # IMAP LOGINDISABLED before TLS
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A real server of the protocol answered over a verified TLS connection."""
        return self.reachable and self.tls_verified and bool(self.greeting) and self.error is None


class _ProbeFailed(Exception):
    pass


async def _readline(reader: asyncio.StreamReader) -> str:
    line = await reader.readline()
    if not line:
        raise _ProbeFailed("the server closed the connection")
    return line.decode("utf-8", "replace").rstrip("\r\n")


async def _imap_command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tag: str, command: str
) -> list[str]:
    writer.write(f"{tag} {command}\r\n".encode())
    await writer.drain()
    lines: list[str] = []
    for _ in range(MAX_LINES):
        line = await _readline(reader)
        if line.startswith(f"{tag} "):
            if not line[len(tag) + 1 :].upper().startswith("OK"):
                raise _ProbeFailed(f"{command} refused: {line[:200]}")
            return lines
        lines.append(line)
    raise _ProbeFailed(f"{command}: no tagged answer")


def imap_capabilities(lines: list[str]) -> tuple[str, ...]:
    for line in lines:
        upper = line.upper()
        if upper.startswith("* CAPABILITY "):
            return tuple(line.split()[2:])
        if "[CAPABILITY " in upper:
            start = upper.index("[CAPABILITY ") + len("[CAPABILITY ")
            return tuple(line[start : line.index("]", start)].split())
    return ()


def imap_auth_mechanisms(caps: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c.split("=", 1)[1].upper() for c in caps if c.upper().startswith("AUTH="))


async def _pop3_command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: str, *, multiline: bool = False
) -> list[str] | None:
    """One POP3 command; None for ``-ERR`` (CAPA is optional, RFC 2449), else the lines of a
    multi-line answer (dot-unstuffed) or the status line's text."""
    writer.write(f"{command}\r\n".encode())
    await writer.drain()
    status = await _readline(reader)
    if status.startswith("-ERR"):
        return None
    if not status.startswith("+OK"):
        raise _ProbeFailed(f"{command}: not a POP3 answer: {status[:100]!r}")
    if not multiline:
        return [status[3:].strip()]
    lines: list[str] = []
    for _ in range(MAX_LINES):
        line = await _readline(reader)
        if line == ".":
            return lines
        lines.append(line[1:] if line.startswith("..") else line)
    raise _ProbeFailed(f"{command}: endless answer")


def pop3_auth_mechanisms(caps: tuple[str, ...]) -> tuple[str, ...]:
    """The mechanisms of CAPA's ``SASL PLAIN XOAUTH2`` line (RFC 2449)."""
    for line in caps:
        parts = line.split()
        if parts and parts[0].upper() == "SASL":
            return tuple(p.upper() for p in parts[1:])
    return ()


async def _smtp_reply(reader: asyncio.StreamReader) -> tuple[int, list[str]]:
    lines: list[str] = []
    for _ in range(MAX_LINES):
        line = await _readline(reader)
        if len(line) < 3 or not line[:3].isdigit():
            raise _ProbeFailed(f"not an SMTP reply: {line[:100]!r}")
        lines.append(line[4:])
        if len(line) == 3 or line[3] == " ":
            return int(line[:3]), lines
    raise _ProbeFailed("endless SMTP reply")


async def _smtp_ehlo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> list[str]:
    writer.write(b"EHLO mailport.invalid\r\n")
    await writer.drain()
    code, lines = await _smtp_reply(reader)
    if code != 250:
        raise _ProbeFailed(f"EHLO refused: {code} {' '.join(lines)[:200]}")
    return lines[1:]  # the first line is the greeting-ish "hostname Hello"


def ehlo_auth_mechanisms(keywords: list[str]) -> tuple[str, ...]:
    for line in keywords:
        parts = line.replace("=", " ").split()
        if parts and parts[0].upper() == "AUTH":
            return tuple(p.upper() for p in parts[1:])
    return ()


async def _imap_session(
    target: ProbeTarget, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctx: ssl.SSLContext
) -> dict[str, object]:
    greeting = await _readline(reader)
    if not greeting.upper().startswith(("* OK", "* PREAUTH")):
        raise _ProbeFailed(f"not an IMAP greeting: {greeting[:100]!r}")
    caps = imap_capabilities([greeting]) or imap_capabilities(
        await _imap_command(reader, writer, "p1", "CAPABILITY")
    )
    result: dict[str, object] = {"greeting": greeting}
    if target.security == Security.STARTTLS:
        upper = {c.upper() for c in caps}
        result["login_disabled"] = "LOGINDISABLED" in upper
        if "STARTTLS" not in upper:
            result.update(capabilities=caps, error="STARTTLS is not offered")
            return result
        result["starttls"] = True
        await _imap_command(reader, writer, "p2", "STARTTLS")
        await writer.start_tls(ctx, server_hostname=target.host)
        result["tls_verified"] = True
        caps = imap_capabilities(await _imap_command(reader, writer, "p3", "CAPABILITY"))
    result.update(capabilities=caps, auth_mechanisms=imap_auth_mechanisms(caps))
    with contextlib.suppress(_ProbeFailed, OSError):
        await _imap_command(reader, writer, "p4", "LOGOUT")
    return result


async def _pop3_session(
    target: ProbeTarget, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctx: ssl.SSLContext
) -> dict[str, object]:
    greeting = await _readline(reader)
    if not greeting.startswith("+OK"):
        raise _ProbeFailed(f"not a POP3 greeting: {greeting[:100]!r}")
    caps = tuple(await _pop3_command(reader, writer, "CAPA", multiline=True) or ())
    result: dict[str, object] = {"greeting": greeting}
    if target.security == Security.STARTTLS:
        # Without CAPA (RFC 1939 servers) STLS may still work: ask rather than guess.
        if caps and "STLS" not in {c.split()[0].upper() for c in caps if c.split()}:
            result.update(capabilities=caps, error="STLS is not offered")
            return result
        if await _pop3_command(reader, writer, "STLS") is None:
            result.update(capabilities=caps, error="STLS refused")
            return result
        result["starttls"] = True
        await writer.start_tls(ctx, server_hostname=target.host)
        result["tls_verified"] = True
        caps = tuple(await _pop3_command(reader, writer, "CAPA", multiline=True) or ())
    result.update(capabilities=caps, auth_mechanisms=pop3_auth_mechanisms(caps))
    with contextlib.suppress(_ProbeFailed, OSError):
        await _pop3_command(reader, writer, "QUIT")
    return result


async def _smtp_session(
    target: ProbeTarget, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctx: ssl.SSLContext
) -> dict[str, object]:
    code, lines = await _smtp_reply(reader)
    if code != 220:
        raise _ProbeFailed(f"SMTP greeting {code}: {' '.join(lines)[:200]}")
    result: dict[str, object] = {"greeting": f"{code} {lines[0] if lines else ''}".strip()}
    keywords = await _smtp_ehlo(reader, writer)
    if target.security == Security.STARTTLS:
        if not any(k.upper().split()[:1] == ["STARTTLS"] for k in keywords if k.split()):
            result.update(capabilities=tuple(keywords), error="STARTTLS is not offered")
            return result
        result["starttls"] = True
        writer.write(b"STARTTLS\r\n")
        await writer.drain()
        code, lines = await _smtp_reply(reader)
        if code != 220:
            raise _ProbeFailed(f"STARTTLS refused: {code} {' '.join(lines)[:200]}")
        await writer.start_tls(ctx, server_hostname=target.host)
        result["tls_verified"] = True
        keywords = await _smtp_ehlo(reader, writer)
    result.update(capabilities=tuple(keywords), auth_mechanisms=ehlo_auth_mechanisms(keywords))
    with contextlib.suppress(OSError, _ProbeFailed):
        writer.write(b"QUIT\r\n")
        await writer.drain()
        await _smtp_reply(reader)
    return result


_SESSIONS = {"imap": _imap_session, "smtp": _smtp_session, "pop3": _pop3_session}


async def probe(
    target: ProbeTarget,
    vetted: VettedHost,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 5.0,
) -> ProbeResult:
    """Probe ``target`` at the address the SSRF guard vetted (TLS name = ``target.host``)."""
    ctx = ssl_context or MailTrust().context()
    writer: asyncio.StreamWriter | None = None
    reachable = False
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await open_stream(
                vetted, timeout=timeout, ssl_context=ctx if target.security == Security.SSL else None
            )
            reachable = True
            session = _SESSIONS[target.protocol]
            fields = await session(target, reader, writer, ctx)
            if target.security == Security.SSL:
                fields["tls_verified"] = True
            elif target.security == Security.NONE:
                fields["tls_verified"] = False
            return ProbeResult(target=target, reachable=True, **fields)  # type: ignore[arg-type]
    except ssl.SSLCertVerificationError as exc:
        return ProbeResult(target, reachable=True, error=f"certificate not trusted: {exc.verify_message}")
    except ssl.SSLError as exc:
        return ProbeResult(target, reachable=reachable, error=f"TLS failed: {exc.reason or exc}")
    except TimeoutError:
        return ProbeResult(target, reachable=reachable, error="timed out")
    except _ProbeFailed as exc:
        return ProbeResult(target, reachable=reachable, error=str(exc))
    except OSError as exc:
        return ProbeResult(target, reachable=reachable, error=f"connection failed: {exc.strerror or exc}")
    except MailportError as exc:  # open_stream: refused, unreachable
        return ProbeResult(target, reachable=reachable, error=f"connection failed: {exc}")
    except UnicodeError as exc:
        return ProbeResult(target, reachable=reachable, error=f"undecodable answer: {exc}")
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await writer.wait_closed()
