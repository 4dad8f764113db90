"""Real failures from real servers, diagnosed: the troubleshooting catalog must recognise what
OpenSSL, the kernel, Dovecot and aiosmtpd actually produce, not just our hand-made exceptions.

Uses the test bed (Dovecot, the aiosmtpd submission server) and small TLS/TCP servers started
here with certificates made per test (expired, self-signed, another host's).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl

import aiosmtplib
import pytest

from mailport.diagnosis import Diagnosis, Failure, ServerReply, diagnose
from mailport.net.guard import HostGuard, VettedHost
from mailport.net.probe import peer_certificate_names, probe_plaintext
from tests.conftest import issue_token
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.idp import MockIdP
from tests.mailstack.smtp import SubmissionServer

LOOPBACK = ipaddress.ip_address("127.0.0.1")


def vetted(port: int, name: str = "127.0.0.1") -> VettedHost:
    return VettedHost(name, port, (LOOPBACK,), name, "allowed_hosts")


async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"* OK ready\r\n")
    await writer.drain()
    await reader.read(100)
    writer.close()


async def tls_connect(port: int, *, server_hostname: str, cafile: str | None) -> None:
    context = ssl.create_default_context(cafile=cafile)
    _, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=server_hostname), 5
    )
    writer.close()


async def tls_failure(port: int, *, server_hostname: str = "127.0.0.1", cafile: str | None) -> BaseException:
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)) as info:
        await tls_connect(port, server_hostname=server_hostname, cafile=cafile)
    return info.value


async def tls_diagnosis(
    port: int, *, cafile: str | None, protocol: str = "imap", security: str | None = None
) -> Diagnosis:
    """The diagnosis of a TLS handshake to 127.0.0.1:``port`` that fails."""
    error = await tls_failure(port, cafile=cafile)
    return diagnose(
        Failure(
            step="tls_handshake",
            protocol=protocol,
            host="127.0.0.1",
            port=port,
            security=security,
            error=error,
        )
    )


# --------------------------------------------------------------------------- certificates


async def test_hostname_mismatch_suggests_the_certificates_host(serve, pki) -> None:  # type: ignore[no-untyped-def]
    port = await serve(greet, tls=pki["other_host"])
    error = await tls_failure(port, server_hostname="mail.customer.test", cafile=str(pki["ca"].cert))
    names = await peer_certificate_names(vetted(port, "127.0.0.1"))
    assert names == ("imap.hoster.test", "*.hoster.test")
    diagnosis = diagnose(
        Failure(
            step="tls_handshake",
            protocol="imap",
            host="mail.customer.test",
            port=port,
            security="ssl",
            error=error,
            peer_names=names,
        )
    )
    assert diagnosis.code == "certificate_hostname_mismatch"
    assert diagnosis.suggestions[0].host == "imap.hoster.test"
    assert "imap.hoster.test" in diagnosis.hint


async def test_expired_certificate(serve, pki) -> None:  # type: ignore[no-untyped-def]
    port = await serve(greet, tls=pki["expired"])
    diagnosis = await tls_diagnosis(port, cafile=str(pki["ca"].cert), protocol="smtp")
    assert diagnosis.code == "certificate_expired"
    assert "expired" in diagnosis.detail


async def test_self_signed_certificate(serve, pki) -> None:  # type: ignore[no-untyped-def]
    port = await serve(greet, tls=pki["self_signed"])
    diagnosis = await tls_diagnosis(port, cafile=None)
    assert diagnosis.code == "certificate_self_signed"
    assert "trust this certificate" in diagnosis.hint


async def test_certificate_from_an_unknown_ca(serve, pki) -> None:  # type: ignore[no-untyped-def]
    port = await serve(greet, tls=pki["good"])
    diagnosis = await tls_diagnosis(port, cafile=None)
    assert diagnosis.code == "certificate_untrusted"
    await tls_connect(port, server_hostname="127.0.0.1", cafile=str(pki["ca"].cert))  # the CA file fixes it


async def test_the_beds_dovecot_with_the_wrong_ca(dovecot: Dovecot) -> None:
    diagnosis = await tls_diagnosis(dovecot.imaps_port, cafile=None)
    assert diagnosis.code in ("certificate_self_signed", "certificate_untrusted")


# --------------------------------------------------------------------------- port / security pairs


async def test_tls_spoken_to_dovecots_plaintext_port(dovecot: Dovecot) -> None:
    diagnosis = await tls_diagnosis(dovecot.imap_port, cafile=dovecot.ca_file, security="ssl")
    assert diagnosis.code == "tls_on_plaintext_port"
    assert diagnosis.suggestions[0].as_dict() == {"port": dovecot.imap_port, "security": "starttls"}


async def test_tls_spoken_to_the_smtp_submission_port(smtp: SubmissionServer, dovecot: Dovecot) -> None:
    diagnosis = await tls_diagnosis(smtp.port, cafile=dovecot.ca_file, protocol="smtp", security="ssl")
    assert diagnosis.code == "tls_on_plaintext_port"
    assert {"port": 465, "security": "ssl"} in [s.as_dict() for s in diagnosis.suggestions]


@pytest.mark.parametrize("which", ["imap", "smtp"])
async def test_plaintext_spoken_to_an_implicit_tls_port(
    which: str, dovecot: Dovecot, smtp: SubmissionServer
) -> None:
    port = dovecot.imaps_port if which == "imap" else smtp.tls_port
    evidence = await probe_plaintext(vetted(port), greeting_timeout=0.5, probe_timeout=3)
    assert evidence.received is None and evidence.probe == b""
    diagnosis = diagnose(
        Failure(
            step="greeting",
            protocol=which,  # type: ignore[arg-type]
            host="127.0.0.1",
            port=port,
            security="starttls",
            error=TimeoutError(),
            received=evidence.received,
            probe=evidence.probe,
        )
    )
    assert diagnosis.code == "plaintext_on_tls_port"
    assert diagnosis.suggestions[0].as_dict() == {"port": port, "security": "ssl"}


async def test_a_server_that_accepts_tcp_and_never_speaks(serve) -> None:  # type: ignore[no-untyped-def]
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers, never hangs up first

    port = await serve(silent)
    evidence = await probe_plaintext(vetted(port), greeting_timeout=0.3, probe_timeout=0.3)
    assert evidence == type(evidence)(received=None, probe=None)
    diagnosis = diagnose(
        Failure(
            step="greeting",
            protocol="imap",
            host="127.0.0.1",
            port=port,
            security="ssl",
            error=TimeoutError(),
            probe=evidence.probe,
        )
    )
    assert diagnosis.code == "server_silent"


async def test_an_smtp_server_on_the_imap_port(smtp: SubmissionServer) -> None:
    evidence = await probe_plaintext(vetted(smtp.port), greeting_timeout=3)
    assert evidence.received and evidence.received.startswith(b"220 ")
    diagnosis = diagnose(
        Failure(
            step="greeting", protocol="imap", host="127.0.0.1", port=smtp.port, received=evidence.received
        )
    )
    assert diagnosis.code == "wrong_service"


async def test_operator_guard_and_probe_against_localhost(dovecot: Dovecot) -> None:
    target = await HostGuard.for_operator().vet("localhost", dovecot.imap_port)
    evidence = await probe_plaintext(target, greeting_timeout=3)
    assert evidence.received is not None and evidence.received.startswith(b"* OK")


# --------------------------------------------------------------------------- the server's own words


async def _imap_exchange(dovecot: Dovecot, *commands: bytes) -> bytes:
    """Run raw IMAP commands over implicit TLS and return the last line (the tagged answer)."""
    context = ssl.create_default_context(cafile=dovecot.ca_file)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", dovecot.imaps_port, ssl=context, server_hostname="127.0.0.1"
    )
    try:
        await reader.readline()
        line = b""
        for command in commands:
            writer.write(command)
            await writer.drain()
            while True:
                line = await asyncio.wait_for(reader.readline(), 10)
                if line.startswith(b"+ "):  # SASL error challenge: answer with an empty line
                    writer.write(b"\r\n")
                    await writer.drain()
                    continue
                if not line.startswith(b"* "):
                    break
        return line
    finally:
        writer.close()


async def test_dovecot_wrong_password(dovecot: Dovecot, password_user: tuple[str, str]) -> None:
    user, _password = password_user
    line = await _imap_exchange(dovecot, f'a LOGIN "{user}" "wrong"\r\n'.encode())
    reply = ServerReply.imap(line)
    assert reply.status == "NO" and reply.response_code == "AUTHENTICATIONFAILED"
    diagnosis = diagnose(
        Failure(step="authentication", protocol="imap", host="127.0.0.1", auth="password", reply=reply)
    )
    assert diagnosis.code == "invalid_credentials"
    assert diagnosis.server_said and "AUTHENTICATIONFAILED" in diagnosis.server_said


@pytest.mark.parametrize("token_kind", ["expired", "revoked"])
async def test_dovecot_refuses_expired_and_revoked_tokens(
    dovecot: Dovecot, idp: MockIdP, oauth_user: tuple[str, dict[str, object]], token_kind: str
) -> None:
    email, token = oauth_user
    if token_kind == "expired":
        token = issue_token(idp, email, expires_in=-1)
    else:  # revoke this one token (RFC 7009) at the authorization server
        import urllib.parse
        import urllib.request

        form = urllib.parse.urlencode({"token": str(token["access_token"])}).encode()
        await asyncio.to_thread(urllib.request.urlopen, f"{idp.url}/revoke", form, 10)
    sasl = base64.b64encode(f"user={email}\x01auth=Bearer {token['access_token']}\x01\x01".encode()).decode()
    line = await _imap_exchange(dovecot, f"a AUTHENTICATE XOAUTH2 {sasl}\r\n".encode())
    reply = ServerReply.imap(line)
    assert reply.status == "NO"
    diagnosis = diagnose(
        Failure(step="authentication", protocol="imap", host="127.0.0.1", auth="oauth2", reply=reply)
    )
    assert diagnosis.code == "oauth_token_rejected"


async def test_smtp_wrong_password(
    smtp: SubmissionServer, dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    user, _password = password_user
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=smtp.tls_port,
        use_tls=True,
        tls_context=ssl.create_default_context(cafile=dovecot.ca_file),
    )
    await client.connect()
    try:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
            await client.login(user, "wrong")
    finally:
        await client.quit()
    reply = ServerReply.smtp(info.value.code, info.value.message)
    diagnosis = diagnose(
        Failure(step="smtp_auth", protocol="smtp", host="127.0.0.1", auth="password", reply=reply)
    )
    assert diagnosis.code == "invalid_credentials"
    assert diagnosis.server_said and diagnosis.server_said.startswith("535")
