"""SMTP submission against the bed's aiosmtpd server (which delivers into Dovecot)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from mailport.crypto import Secret
from mailport.errors import (
    AuthenticationError,
    AuthMechanismUnsupportedError,
    InsecureAuthRefusedError,
    SMTPRejectedError,
    TLSError,
)
from mailport.imap import ImapClient, OAuth2Auth, PasswordAuth
from mailport.smtp import SmtpClient, send_message
from tests.conftest import issue_token
from tests.mailstack.dovecot import Dovecot, free_port
from tests.mailstack.smtp import RestrictedController, SubmissionServer


@contextlib.contextmanager
def restricted(
    dovecot: Dovecot, smtp: SubmissionServer, *, auth_line_limit: int = 1024, exclude: tuple[str, ...] = ()
) -> Iterator[RestrictedController]:
    """A second STARTTLS listener of the bed's submission server, Dovecot-like: a short AUTH
    line limit and, optionally, fewer AUTH mechanisms."""
    server = RestrictedController(
        smtp.handler,
        port=free_port(),
        cert=str(dovecot.root / "ssl/cert.pem"),
        key=str(dovecot.root / "ssl/key.pem"),
        auth_line_limit=auth_line_limit,
        exclude=exclude,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def message(sender: str, to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content("sent by mailport")
    return msg


async def read_back(dovecot: Dovecot, user: str, password: str, subject: str) -> bytes:
    async with await ImapClient.open(
        "127.0.0.1", dovecot.imaps_port, ca_file=dovecot.ca_file, auth=PasswordAuth(user, Secret(password))
    ) as imap:
        for _ in range(50):
            await imap.select("INBOX")
            for m in await imap.fetch_since(1):
                if subject.encode() in (m.raw or b""):
                    return m.raw or b""
            await asyncio.sleep(0.1)
    raise AssertionError(f"{subject!r} never arrived")


@pytest.mark.parametrize("security", ["starttls", "tls"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_password_auth_and_read_back(
    dovecot: Dovecot, smtp: SubmissionServer, password_user, security: str, mechanism: str
) -> None:
    user, password = password_user
    subject = f"pw {security} {mechanism}"
    port = smtp.port if security == "starttls" else smtp.tls_port
    client = await SmtpClient.open(
        "127.0.0.1",
        port,
        security=security,
        ca_file=dovecot.ca_file,
        auth=PasswordAuth(user, Secret(password), mechanism=mechanism),  # type: ignore[arg-type]
    )
    assert client.encrypted and client.tls is not None and client.tls.verified
    result = await client.send(message(user, user, subject))
    await client.quit()
    assert result.code == 250
    assert smtp.handler.messages[-1].mechanism == mechanism
    assert b"sent by mailport" in await read_back(dovecot, user, password, subject)


@pytest.mark.parametrize(
    ("security", "mechanism"), [("starttls", "XOAUTH2"), ("tls", "XOAUTH2"), ("tls", "OAUTHBEARER")]
)
async def test_oauth_with_a_token_source_and_envelope(
    dovecot: Dovecot, smtp: SubmissionServer, idp, oauth_user, password_user, security: str, mechanism: str
) -> None:
    sender, _ = oauth_user
    recipient, password = password_user

    async def token() -> str:
        return str(issue_token(idp, sender)["access_token"])

    subject = f"{mechanism} {security}"
    await send_message(
        message(sender, "header-only@example.test", subject),
        host="127.0.0.1",
        port=smtp.port if security == "starttls" else smtp.tls_port,
        security=security,
        ca_file=dovecot.ca_file,
        auth=OAuth2Auth(sender, token, mechanism=mechanism),  # type: ignore[arg-type]
        sender=sender,
        recipients=[recipient],
    )
    received = smtp.handler.messages[-1]
    assert (received.mechanism, received.mail_from, received.rcpt_tos) == (mechanism, sender, [recipient])
    assert b"header-only@example.test" in await read_back(dovecot, recipient, password, subject)


async def test_expired_token_error_challenge_is_decoded(
    dovecot: Dovecot, smtp: SubmissionServer, idp, oauth_user
):
    email, _ = oauth_user
    expired = str(issue_token(idp, email, expires_in=-1)["access_token"])
    with pytest.raises(AuthenticationError) as info:
        await SmtpClient.open(
            "127.0.0.1", smtp.port, ca_file=dovecot.ca_file, auth=OAuth2Auth(email, Secret(expired))
        )
    assert info.value.details["smtp_code"] == 535
    assert info.value.details["oauth_error"]["status"] == "401"
    assert expired not in str(info.value)


async def test_wrong_password_keeps_code_and_text(
    dovecot: Dovecot, smtp: SubmissionServer, password_user
) -> None:
    with pytest.raises(AuthenticationError) as info:
        await SmtpClient.open(
            "127.0.0.1",
            smtp.tls_port,
            security="tls",
            ca_file=dovecot.ca_file,
            auth=PasswordAuth(password_user[0], Secret("nope")),
        )
    assert info.value.details["smtp_code"] == 535
    assert info.value.server_said


async def test_injected_4xx_is_reported_with_its_code(
    dovecot: Dovecot, smtp: SubmissionServer, password_user
):
    user, password = password_user
    smtp.handler.fail_next = "451 4.3.0 Try again later"
    with pytest.raises(SMTPRejectedError) as info:
        await send_message(
            message(user, user, "fails"),
            host="127.0.0.1",
            port=smtp.port,
            ca_file=dovecot.ca_file,
            auth=PasswordAuth(user, Secret(password)),
        )
    assert info.value.smtp_code == 451
    assert info.value.server_said == "4.3.0 Try again later"


async def test_auth_line_too_long_is_retried_without_initial_response(
    dovecot: Dovecot, smtp: SubmissionServer, idp, oauth_user
) -> None:
    # A server answering like Dovecot's submission service to a Microsoft-size token.
    with restricted(dovecot, smtp) as strict:
        email, _ = oauth_user
        token = str(issue_token(idp, email, pad=1500)["access_token"])
        client = await SmtpClient.open(
            "127.0.0.1", strict.port, ca_file=dovecot.ca_file, auth=OAuth2Auth(email, Secret(token))
        )
        result = await client.send(message(email, email, "long token"))
        await client.quit()
        assert result.code == 250 and smtp.handler.messages[-1].mechanism == "XOAUTH2"
        assert strict.auth_sent == ["XOAUTH2", "XOAUTH2"]
        # the retry happens once: a refused token still fails cleanly (no loop)
        expired = str(issue_token(idp, email, expires_in=-1, pad=1500)["access_token"])
        with pytest.raises(AuthenticationError) as info:
            await SmtpClient.open(
                "127.0.0.1", strict.port, ca_file=dovecot.ca_file, auth=OAuth2Auth(email, Secret(expired))
            )
        assert info.value.details["smtp_code"] == 535


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_password_auth_too_long_for_the_line_limit_falls_back_too(
    dovecot: Dovecot, smtp: SubmissionServer, mechanism: str
) -> None:
    # A 120-character address and password: over a 100-byte AUTH line limit for PLAIN (and for
    # LOGIN's user name), as a long password is over Dovecot's ~1 KB.
    local = "u" + "x" * 90
    user, password = Dovecot.dyn_user(local)
    with restricted(dovecot, smtp, auth_line_limit=100) as strict:
        client = await SmtpClient.open(
            "127.0.0.1",
            strict.port,
            ca_file=dovecot.ca_file,
            auth=PasswordAuth(user, Secret(password), mechanism=mechanism),  # type: ignore[arg-type]
        )
        result = await client.send(message(user, user, f"long {mechanism}"))
        await client.quit()
        assert result.code == 250
        assert smtp.handler.messages[-1].mechanism == mechanism
        assert smtp.handler.messages[-1].auth_user == user
        assert strict.auth_sent == [mechanism, mechanism]  # refused as too long, then without it
        with pytest.raises(AuthenticationError) as info:  # a wrong password still fails cleanly
            await SmtpClient.open(
                "127.0.0.1",
                strict.port,
                ca_file=dovecot.ca_file,
                auth=PasswordAuth(user, Secret("wrong" * 30), mechanism=mechanism),  # type: ignore[arg-type]
            )
        assert info.value.details["smtp_code"] == 535


async def test_only_advertised_mechanisms_are_sent(
    dovecot: Dovecot, smtp: SubmissionServer, password_user, oauth_user, idp
) -> None:
    user, password = password_user
    with restricted(dovecot, smtp, exclude=("PLAIN", "OAUTHBEARER")) as login_only:
        # "auto" picks what is offered: LOGIN
        client = await SmtpClient.open(
            "127.0.0.1", login_only.port, ca_file=dovecot.ca_file, auth=PasswordAuth(user, Secret(password))
        )
        assert "PLAIN" not in client.auth_mechanisms
        await client.quit()
        assert login_only.auth_sent == ["LOGIN"]
        # a named mechanism the server does not offer is never sent: a clear error instead
        for auth in (
            PasswordAuth(user, Secret(password), mechanism="PLAIN"),
            OAuth2Auth(
                oauth_user[0], Secret(str(issue_token(idp, oauth_user[0])["access_token"])), "OAUTHBEARER"
            ),
        ):
            with pytest.raises(AuthMechanismUnsupportedError) as info:
                await SmtpClient.open("127.0.0.1", login_only.port, ca_file=dovecot.ca_file, auth=auth)
            assert info.value.code == "auth_mechanism_unsupported"
            assert "it offers: LOGIN, XOAUTH2" in info.value.message
        assert login_only.auth_sent == ["LOGIN"]
    with restricted(dovecot, smtp, exclude=("PLAIN", "LOGIN")) as oauth_only:
        with pytest.raises(AuthMechanismUnsupportedError, match=r"does not offer AUTH PLAIN or LOGIN"):
            await SmtpClient.open(
                "127.0.0.1",
                oauth_only.port,
                ca_file=dovecot.ca_file,
                auth=PasswordAuth(user, Secret(password)),
            )
        assert oauth_only.auth_sent == []


async def test_credentials_are_never_sent_unencrypted(smtp: SubmissionServer, password_user) -> None:
    with pytest.raises(InsecureAuthRefusedError):
        SmtpClient("127.0.0.1", smtp.port, security="plain")
    client = SmtpClient("127.0.0.1", smtp.port, security="plain", allow_plaintext=True)
    await client.connect()
    with pytest.raises(InsecureAuthRefusedError):
        await client.authenticate(PasswordAuth(password_user[0], Secret(password_user[1])))


async def test_unknown_certificate_is_a_tls_error(smtp: SubmissionServer) -> None:
    for security, port in (("tls", smtp.tls_port), ("starttls", smtp.port)):
        client = SmtpClient("127.0.0.1", port, security=security, ssl_context=ssl.create_default_context())
        with pytest.raises(TLSError, match="certificate verification failed"):
            await client.connect()


async def test_starttls_not_offered_and_nothing_listening(smtp: SubmissionServer) -> None:
    from aiosmtpd.controller import Controller

    from mailport.errors import ConnectError

    no_tls = Controller(smtp.handler, hostname="127.0.0.1", port=free_port())  # no STARTTLS offered
    no_tls.start()
    try:
        with pytest.raises(TLSError, match="STARTTLS"):
            await SmtpClient("127.0.0.1", no_tls.port, security="starttls", timeout=5).connect()
    finally:
        no_tls.stop()
    with pytest.raises(ConnectError):
        await SmtpClient("127.0.0.1", free_port(), security="tls", timeout=5).connect()
