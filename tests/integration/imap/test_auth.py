"""Transport and authentication of mailport's IMAP client against the Dovecot bed."""

from __future__ import annotations

import logging
import ssl
from datetime import UTC, datetime

import pytest

from mailport.crypto import Secret
from mailport.errors import AuthenticationError, InsecureAuthRefusedError, InvalidCredentialsError, TLSError
from mailport.imap import ImapClient, OAuth2Auth, PasswordAuth, Security
from tests.conftest import issue_token
from tests.mailstack.dovecot import Dovecot


async def test_implicit_tls_step_by_step_with_certificate_facts(dovecot: Dovecot, password_user) -> None:
    user, password = password_user
    client = ImapClient("127.0.0.1", dovecot.imaps_port, ca_file=dovecot.ca_file)
    await client.connect_tcp()
    tls = await client.tls_handshake()
    assert tls.version in ("TLSv1.2", "TLSv1.3") and tls.verified
    assert tls.subject == "localhost" and "127.0.0.1" in tls.san
    assert tls.not_after is not None and tls.not_after > datetime.now(UTC)
    greeting = await client.read_greeting()
    assert greeting.status == "OK"
    assert "IMAP4REV1" in await client.capability()
    await client.authenticate(PasswordAuth(user, Secret(password)))
    info = await client.select("INBOX")
    assert info.uidvalidity and info.uidnext == 1 and info.exists == 0
    await client.logout()
    assert not client.connected


async def test_starttls_then_login_command(dovecot: Dovecot, password_user) -> None:
    user, password = password_user
    client = ImapClient("127.0.0.1", dovecot.imap_port, security="starttls", ca_file=dovecot.ca_file)
    await client.connect()
    assert client.encrypted and "LOGINDISABLED" not in client.capabilities
    await client.authenticate(PasswordAuth(user, Secret(password), mechanism="LOGIN"))
    assert (await client.select()).uidvalidity
    await client.logout()


async def test_authenticate_plain_without_sasl_ir_uses_a_continuation(
    dovecot: Dovecot, password_user
) -> None:
    user, password = password_user
    client = await ImapClient.open(
        "127.0.0.1",
        dovecot.imaps_port,
        ca_file=dovecot.ca_file,
        ignore_capabilities=["SASL-IR"],
        auth=PasswordAuth(user, Secret(password), mechanism="PLAIN"),
    )
    assert "SASL-IR" not in client.capabilities
    assert (await client.status("INBOX"))["MESSAGES"] == 0
    await client.logout()


async def test_wrong_password_keeps_the_servers_text(dovecot: Dovecot, password_user) -> None:
    user, _ = password_user
    for mechanism in ("PLAIN", "LOGIN"):
        with pytest.raises(AuthenticationError) as info:
            await ImapClient.open(
                "127.0.0.1",
                dovecot.imaps_port,
                ca_file=dovecot.ca_file,
                auth=PasswordAuth(user, Secret("wrong-password"), mechanism=mechanism),  # type: ignore[arg-type]
            )
        assert "AUTHENTICATIONFAILED" in (info.value.server_said or "")
        assert isinstance(info.value, InvalidCredentialsError)
        assert "wrong-password" not in str(info.value)


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_oauth_token_from_an_async_source(dovecot: Dovecot, idp, oauth_user, mechanism: str) -> None:
    email, _ = oauth_user
    fetched: list[str] = []

    async def fresh_token() -> str:
        token = str(issue_token(idp, email)["access_token"])
        fetched.append(token)
        return token

    client = await ImapClient.open(
        "127.0.0.1",
        dovecot.imaps_port,
        ca_file=dovecot.ca_file,
        auth=OAuth2Auth(email, fresh_token, mechanism=mechanism),  # type: ignore[arg-type]
    )
    assert len(fetched) == 1
    assert (await client.select("INBOX")).uidvalidity
    await client.logout()


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
@pytest.mark.parametrize("sasl_ir", [True, False])
async def test_expired_token_decodes_the_oauth_error_challenge(
    dovecot: Dovecot, idp, oauth_user, mechanism: str, sasl_ir: bool
) -> None:
    email, _ = oauth_user
    expired = str(issue_token(idp, email, expires_in=-1)["access_token"])
    with pytest.raises(AuthenticationError) as info:
        await ImapClient.open(
            "127.0.0.1",
            dovecot.imaps_port,
            ca_file=dovecot.ca_file,
            ignore_capabilities=() if sasl_ir else ["SASL-IR"],
            auth=OAuth2Auth(email, Secret(expired), mechanism=mechanism),  # type: ignore[arg-type]
        )
    error = info.value
    # XOAUTH2 answers Google-style ("401"), OAUTHBEARER RFC 7628-style ("invalid_token")
    status = error.details["oauth_error"]["status"]
    assert status == ("401" if mechanism == "XOAUTH2" else "invalid_token")
    assert f"status {status}" in error.message
    assert "AUTHENTICATIONFAILED" in (error.server_said or "")
    assert expired not in error.message


async def test_long_token_over_sasl_ir(dovecot: Dovecot, idp, oauth_user) -> None:
    email, _ = oauth_user
    token = str(issue_token(idp, email, pad=1500)["access_token"])
    assert len(token) > 2000
    client = await ImapClient.open(
        "127.0.0.1", dovecot.imaps_port, ca_file=dovecot.ca_file, auth=OAuth2Auth(email, Secret(token))
    )
    await client.logout()


async def test_wrong_ca_is_a_clear_tls_error(dovecot: Dovecot, tmp_path) -> None:
    other_ca = ssl.create_default_context()  # system CAs only: the bed's self-signed cert is unknown
    client = ImapClient("127.0.0.1", dovecot.imaps_port, ssl_context=other_ca)
    with pytest.raises(TLSError) as info:
        await client.connect()
    assert "certificate verify failed" in info.value.message or "self-signed" in info.value.message
    assert info.value.details["verify_message"]
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


async def test_skip_verify_is_opt_in_and_warns(dovecot: Dovecot, password_user, caplog) -> None:
    user, password = password_user
    with caplog.at_level(logging.WARNING, logger="mailport.imap.client"):
        client = ImapClient("127.0.0.1", dovecot.imaps_port, verify=False)
    assert "DISABLED" in caplog.text
    await client.connect()
    assert client.tls is not None and not client.tls.verified and client.tls.subject == "localhost"
    await client.authenticate(PasswordAuth(user, Secret(password)))
    await client.logout()


async def test_plain_connections_need_explicit_permission(dovecot: Dovecot, password_user) -> None:
    with pytest.raises(InsecureAuthRefusedError):
        ImapClient("127.0.0.1", dovecot.imap_port, security=Security.PLAIN)
    user, password = password_user
    client = ImapClient("127.0.0.1", dovecot.imap_port, security="plain", allow_plaintext=True)
    await client.connect()
    with pytest.raises(InsecureAuthRefusedError):
        await client.authenticate(PasswordAuth(user, Secret(password)))
    assert not client.connected  # nothing was sent; the connection was dropped


async def test_plaintext_auth_when_allowed_and_logindisabled_from_a_remote_address(
    dovecot: Dovecot, password_user
) -> None:
    user, password = password_user
    local = await ImapClient.open(
        "127.0.0.1",
        dovecot.imap_port,
        security="plain",
        allow_plaintext=True,
        allow_plaintext_auth=True,
        auth=PasswordAuth(user, Secret(password)),
    )
    await local.logout()


async def test_logindisabled_refuses_a_password_on_a_plain_connection(idp, mail_root) -> None:
    # Dovecot treats same-IP connections as secure, so connect from 127.0.0.2 to a Dovecot
    # that disables plaintext auth: it then advertises LOGINDISABLED.
    strict = Dovecot(mail_root / "dovecot-strict", extra_config="disable_plaintext_auth = yes\n")
    strict.start()
    try:
        user, password = strict.dyn_user("strict")
        remote = ImapClient(
            "127.0.0.1",
            strict.imap_port,
            security="plain",
            allow_plaintext=True,
            allow_plaintext_auth=True,
            local_addr=("127.0.0.2", 0),
        )
        await remote.connect()
        assert remote.has("LOGINDISABLED")
        with pytest.raises(AuthenticationError, match="LOGINDISABLED"):
            await remote.authenticate(PasswordAuth(user, Secret(password)))
        remote.close()
    finally:
        strict.stop()


async def test_implicit_tls_against_a_plain_port_is_a_tls_error(dovecot: Dovecot) -> None:
    client = ImapClient("127.0.0.1", dovecot.imap_port, ca_file=dovecot.ca_file, connect_timeout=5)
    with pytest.raises(TLSError, match="TLS handshake failed"):
        await client.connect()
