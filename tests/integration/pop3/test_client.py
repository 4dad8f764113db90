"""mailport's POP3 client against Dovecot's POP3 server: POP3S and STLS, plaintext refused
without an explicit choice, certificates verified (CA or pin), USER/PASS and SASL PLAIN,
XOAUTH2 and OAUTHBEARER with tokens from the local authorization server, a wrong password."""

from __future__ import annotations

import pytest

from mailport.crypto import Secret
from mailport.errors import (
    AuthenticationError,
    CertificateChangedError,
    InsecureAuthRefusedError,
    InvalidCredentialsError,
    TLSError,
)
from mailport.net.trust import Certificate, MailTrust
from mailport.pop3 import OAuth2Auth, PasswordAuth, Pop3Client
from tests.conftest import issue_token
from tests.integration.sync.conftest import make_message
from tests.mailstack.dovecot import Dovecot


def _trust(dovecot: Dovecot) -> MailTrust:
    return MailTrust(ca_files=[dovecot.ca_file])


@pytest.mark.parametrize("security", ["ssl", "starttls"])
async def test_both_tls_modes(dovecot: Dovecot, password_user: tuple[str, str], security: str) -> None:
    user, password = password_user
    dovecot.deliver(user, make_message("over tls", "line\r\n.\r\n..dots"))
    port = dovecot.pop3s_port if security == "ssl" else dovecot.pop3_port
    client = await Pop3Client.open(
        "127.0.0.1",
        port,
        security=security,
        ssl_context=_trust(dovecot).context(),
        auth=PasswordAuth(user, Secret(password)),
    )
    assert client.encrypted
    assert client.has("UIDL") and client.has("TOP")
    if security == "starttls":
        assert not client.has("STLS") or client.encrypted
    ((number, uid),) = await client.uidl()
    assert [size for _, size in await client.list()] == [len((await client.retr(number)).data or b"")]
    got = (await client.retr(number)).data or b""
    assert b"Subject: over tls\r\n" in got and got.endswith(b"line\r\n.\r\n..dots\r\n")
    assert (await client.top(number, 0)).data == got.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    await client.quit()
    again = await Pop3Client.open(
        "127.0.0.1",
        port,
        security=security,
        ssl_context=_trust(dovecot).context(),
        auth=PasswordAuth(user, Secret(password)),
    )
    assert await again.uidl() == [(number, uid)]  # the unique id lasts across sessions
    await again.quit()


async def test_plaintext_needs_an_explicit_choice(dovecot: Dovecot, password_user: tuple[str, str]) -> None:
    user, password = password_user
    with pytest.raises(InsecureAuthRefusedError):
        Pop3Client("127.0.0.1", dovecot.pop3_port, security="none")
    client = Pop3Client("127.0.0.1", dovecot.pop3_port, security="none", allow_plaintext=True)
    await client.connect()
    logins = dovecot.logins(user)
    with pytest.raises(InsecureAuthRefusedError):
        await client.authenticate(PasswordAuth(user, Secret(password)))
    assert not client.connected
    assert dovecot.logins(user) == logins  # the password never left


async def test_an_untrusted_certificate_is_refused(dovecot: Dovecot) -> None:
    client = Pop3Client("127.0.0.1", dovecot.pop3s_port, security="ssl", ssl_context=MailTrust().context())
    with pytest.raises(TLSError, match="certificate verification failed"):
        await client.connect()


async def test_a_pinned_certificate(dovecot: Dovecot, password_user: tuple[str, str], tmp_path) -> None:
    user, password = password_user
    pinned = Certificate.from_pem(open(dovecot.ca_file).read())
    client = await Pop3Client.open(
        "127.0.0.1",
        dovecot.pop3s_port,
        ssl_context=MailTrust().context(pinned),
        auth=PasswordAuth(user, Secret(password)),
    )
    await client.quit()
    other = Certificate.from_pem(_other_certificate(tmp_path))
    with pytest.raises(CertificateChangedError):
        await Pop3Client.open("127.0.0.1", dovecot.pop3s_port, ssl_context=MailTrust().context(other))


def _other_certificate(tmp_path) -> str:
    from tests.mailstack.dovecot import make_self_signed_cert

    cert, _key = make_self_signed_cert(tmp_path)
    return cert.read_text()


@pytest.mark.parametrize("mechanism", ["auto", "PLAIN", "LOGIN"])
async def test_password_mechanisms(dovecot: Dovecot, password_user: tuple[str, str], mechanism: str) -> None:
    user, password = password_user
    client = await Pop3Client.open(
        "127.0.0.1",
        dovecot.pop3s_port,
        ssl_context=_trust(dovecot).context(),
        auth=PasswordAuth(user, Secret(password), mechanism=mechanism),  # type: ignore[arg-type]
    )
    assert await client.stat() == (0, 0)
    await client.quit()


@pytest.mark.parametrize("mechanism", ["auto", "LOGIN"])
async def test_a_wrong_password(dovecot: Dovecot, password_user: tuple[str, str], mechanism: str) -> None:
    user, _ = password_user
    with pytest.raises(InvalidCredentialsError) as caught:
        await Pop3Client.open(
            "127.0.0.1",
            dovecot.pop3s_port,
            ssl_context=_trust(dovecot).context(),
            auth=PasswordAuth(user, Secret("wrong-password"), mechanism=mechanism),  # type: ignore[arg-type]
        )
    assert caught.value.server_said is not None and "[AUTH]" in caught.value.server_said
    assert "wrong-password" not in str(caught.value) + repr(caught.value)


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_oauth_tokens(dovecot: Dovecot, idp, oauth_user, mechanism: str) -> None:  # type: ignore[no-untyped-def]
    email, token = oauth_user
    client = await Pop3Client.open(
        "127.0.0.1",
        dovecot.pop3s_port,
        ssl_context=_trust(dovecot).context(),
        auth=OAuth2Auth(email, Secret(str(token["access_token"])), mechanism=mechanism),  # type: ignore[arg-type]
    )
    assert await client.uidl() == []
    await client.quit()
    expired = str(issue_token(idp, email, expires_in=-1)["access_token"])
    with pytest.raises(AuthenticationError) as caught:
        await Pop3Client.open(
            "127.0.0.1",
            dovecot.pop3s_port,
            ssl_context=_trust(dovecot).context(),
            auth=OAuth2Auth(email, Secret(expired), mechanism=mechanism),  # type: ignore[arg-type]
        )
    assert expired not in str(caught.value) + repr(caught.value)
    assert caught.value.details.get("mechanism") == mechanism
