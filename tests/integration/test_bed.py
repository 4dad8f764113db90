"""Proof that each part of the test bed is real (stdlib clients, protocol level)."""

from __future__ import annotations

import base64
import hashlib
import imaplib
import json
import secrets
import smtplib
import ssl
import threading
import time
import urllib.parse
from email.message import EmailMessage

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import issue_token
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.idp import MockIdP
from tests.mailstack.smtp import SubmissionServer


def make_message(subject: str, frm: str = "sender@example.test", to: str = "x@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = frm, to, subject
    msg.set_content("hello")
    return msg


def xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def starttls_login(dovecot: Dovecot, ctx: ssl.SSLContext, user: str, password: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
    client.starttls(ssl_context=ctx)
    client.login(user, password)
    return client


def test_login_over_starttls_with_verified_certificate(dovecot, tls_ctx, password_user):
    user, password = password_user
    client = starttls_login(dovecot, tls_ctx, user, password)
    assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert client.select("INBOX")[0] == "OK"
    client.logout()


def test_login_over_implicit_tls_with_verified_certificate(dovecot, tls_ctx, password_user):
    user, password = password_user
    client = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=tls_ctx)
    assert client.login(user, password)[0] == "OK"
    client.logout()


def test_implicit_tls_refuses_an_unknown_certificate(dovecot):
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=ssl.create_default_context())


def test_fetch_unread_and_mark_read(dovecot, tls_ctx, password_user):
    user, password = password_user
    for i in range(3):
        dovecot.deliver(user, make_message(f"m{i}").as_bytes())
    client = starttls_login(dovecot, tls_ctx, user, password)
    client.select("INBOX")
    uids = client.uid("SEARCH", None, "UNSEEN")[1][0].split()
    assert len(uids) == 3
    client.uid("STORE", uids[0], "+FLAGS.SILENT", r"(\Seen)")
    assert len(client.uid("SEARCH", None, "UNSEEN")[1][0].split()) == 2
    client.logout()


def test_idle_sees_a_delivery(dovecot, tls_ctx, password_user):
    user, password = password_user
    client = starttls_login(dovecot, tls_ctx, user, password)
    client.select("INBOX")
    tag = client._new_tag()
    client.send(tag + b" IDLE\r\n")
    assert client.readline().startswith(b"+")
    threading.Timer(0.2, dovecot.deliver, (user, make_message("pushed").as_bytes())).start()
    client.sock.settimeout(10)
    line = client.readline()
    client.send(b"DONE\r\n")
    while not client.readline().startswith(tag):
        pass
    assert b"EXISTS" in line
    client.logout()


def test_lmtp_delivery_reaches_the_mailbox(dovecot, tls_ctx, password_user):
    user, password = password_user
    with smtplib.LMTP("127.0.0.1", dovecot.lmtp_port) as lmtp:
        assert lmtp.sendmail("a@example.test", [user], make_message("via lmtp", to=user).as_bytes()) == {}
    client = starttls_login(dovecot, tls_ctx, user, password)
    client.select("INBOX")
    data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1]
    assert b"via lmtp" in data[0][1]
    client.logout()


def test_imap_xoauth2_accepts_a_valid_token(dovecot, tls_ctx, oauth_user):
    email, token = oauth_user
    client = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=tls_ctx)
    assert client.authenticate("XOAUTH2", lambda _: xoauth2(email, str(token["access_token"])))[0] == "OK"
    client.logout()


def test_outage_mode_makes_dovecot_answer_unavailable(dovecot, tls_ctx, idp, idp_outage, oauth_user):
    email, token = oauth_user
    idp_outage(True)
    assert httpx.post(f"{idp.url}/introspect", data={"token": "x"}).status_code == 503
    assert httpx.post(f"{idp.url}/google/token", data={"grant_type": "refresh_token"}).status_code == 503
    client = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=tls_ctx)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\]"):
        client.authenticate("XOAUTH2", lambda _: xoauth2(email, str(token["access_token"])))
    idp_outage(False)
    client = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=tls_ctx)
    assert client.authenticate("XOAUTH2", lambda _: xoauth2(email, str(token["access_token"])))[0] == "OK"
    client.logout()


def test_a_provider_without_openid_and_the_revocation_log(idp):
    email = f"plain-{secrets.token_hex(4)}@example.test"
    token = issue_token(idp, email, scope="mail openid email")
    form = {"grant_type": "refresh_token", "refresh_token": str(token["refresh_token"])}
    auth = ("test-client", "test-secret")
    assert "id_token" in httpx.post(f"{idp.url}/google/token", data=form, auth=auth).json()
    refreshed = httpx.post(f"{idp.url}/plain/token", data=form, auth=auth).json()
    assert refreshed["access_token"] and "id_token" not in refreshed
    assert httpx.get(f"{idp.url}/plain/userinfo").status_code == 404
    revoke = {"token": str(token["refresh_token"]), "token_type_hint": "refresh_token"}
    assert httpx.post(f"{idp.url}/plain/revoke", data=revoke, auth=auth).status_code == 200
    logged = httpx.get(f"{idp.url}/_test/revocations", params={"email": email}).json()
    assert logged == [
        {
            "client_id": "test-client",
            "token_type_hint": "refresh_token",
            "kind": "refresh_token",
            "email": email,
        }
    ]


def test_imap_oauthbearer_accepts_a_valid_token(dovecot, tls_ctx, oauth_user):
    email, token = oauth_user
    client = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=tls_ctx)
    bearer = f"auth=Bearer {token['access_token']}"
    blob = f"n,a={email},\x01host=127.0.0.1\x01port={dovecot.imaps_port}\x01{bearer}\x01\x01"
    assert client.authenticate("OAUTHBEARER", lambda _: blob.encode())[0] == "OK"
    client.logout()


def test_smtp_auth_login_and_oauthbearer(smtp: SubmissionServer, tls_ctx, password_user, oauth_user):
    user, password = password_user
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.starttls(context=tls_ctx)
        client.ehlo()
        client.user, client.password = user, password
        assert client.auth("LOGIN", client.auth_login, initial_response_ok=False)[0] == 235
    email, token = oauth_user
    blob = f"n,a={email},\x01auth=Bearer {token['access_token']}\x01\x01"
    with smtplib.SMTP_SSL("127.0.0.1", smtp.tls_port, context=tls_ctx) as client:
        client.ehlo()
        assert client.auth("OAUTHBEARER", lambda c=None: blob)[0] == 235


def _xoauth2_refused(dovecot: Dovecot, ctx: ssl.SSLContext, email: str, token: str) -> dict[str, str]:
    client = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=ctx)
    challenges: list[bytes] = []

    def respond(challenge: bytes) -> bytes:
        challenges.append(challenge)
        return xoauth2(email, token) if len(challenges) == 1 else b""

    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.authenticate("XOAUTH2", respond)
    client.logout()
    return json.loads(challenges[1])


def test_imap_xoauth2_refuses_an_expired_token(dovecot, tls_ctx, idp, oauth_user):
    email, _ = oauth_user
    expired = str(issue_token(idp, email, expires_in=-1)["access_token"])
    assert _xoauth2_refused(dovecot, tls_ctx, email, expired)["status"] == "401"


def test_imap_xoauth2_refuses_a_revoked_token(dovecot, tls_ctx, idp, oauth_user):
    email, token = oauth_user
    httpx.post(f"{idp.url}/revoke", data={"token": token["access_token"]}).raise_for_status()
    assert _xoauth2_refused(dovecot, tls_ctx, email, str(token["access_token"]))["status"] == "401"


def test_imap_xoauth2_refuses_another_users_token(dovecot, tls_ctx, oauth_user):
    _, token = oauth_user
    _xoauth2_refused(dovecot, tls_ctx, "someone-else@example.test", str(token["access_token"]))


def test_send_with_xoauth2_then_read_back_over_imap(
    dovecot, smtp: SubmissionServer, tls_ctx, oauth_user, password_user
):
    sender, token = oauth_user
    recipient, password = password_user
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.starttls(context=tls_ctx)
        client.ehlo()
        client.auth("XOAUTH2", lambda c=None: xoauth2(sender, str(token["access_token"])).decode())
        client.send_message(make_message("sent via xoauth2", sender, recipient))
    assert smtp.handler.messages[-1].auth_user == sender
    imap = starttls_login(dovecot, tls_ctx, recipient, password)
    imap.select("INBOX")
    data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1]
    assert b"sent via xoauth2" in data[0][1]
    imap.logout()


def test_smtp_implicit_tls_and_injected_failure(smtp: SubmissionServer, tls_ctx, password_user):
    user, password = password_user
    smtp.handler.fail_next = "451 4.3.0 Try again later"
    with smtplib.SMTP_SSL("127.0.0.1", smtp.tls_port, context=tls_ctx) as client:
        client.login(user, password)
        with pytest.raises(smtplib.SMTPDataError) as excinfo:
            client.send_message(make_message("x", user, user))
    assert excinfo.value.smtp_code == 451


# --------------------------------------------------------------------------- OAuth server


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _authorize(idp: MockIdP, prefix: str, email: str, challenge: str) -> str:
    redirect = "http://127.0.0.1:9/cb"
    response = httpx.get(
        f"{idp.url}{prefix}/authorize",
        params={
            "client_id": "test-client",
            "redirect_uri": redirect,
            "response_type": "code",
            "scope": "openid email https://mail.google.com/",
            "state": "s1",
            "login_hint": email,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 302
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(response.headers["location"]).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


@pytest.mark.parametrize("prefix", ["/google", "/microsoft/common/oauth2/v2.0"])
def test_authorization_code_with_pkce_and_refresh(idp: MockIdP, prefix: str):
    verifier, challenge = _pkce()
    code = _authorize(idp, prefix, "carol@example.test", challenge)
    token_url = f"{idp.url}{prefix}/token"
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "http://127.0.0.1:9/cb",
        "client_id": "test-client",
        "client_secret": "test-secret",
    }
    assert (
        httpx.post(token_url, data={**form, "code_verifier": "wrong" * 10}).json()["error"] == "invalid_grant"
    )
    code = _authorize(idp, prefix, "carol@example.test", challenge)
    tokens = httpx.post(token_url, data={**form, "code": code, "code_verifier": verifier}).json()
    assert tokens["access_token"] and tokens["refresh_token"] and tokens["id_token"]
    # the code is single-use
    assert httpx.post(token_url, data={**form, "code": code, "code_verifier": verifier}).status_code == 400
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": "test-client",
        "client_secret": "test-secret",
    }
    refreshed = httpx.post(token_url, data=refresh).json()
    assert refreshed["access_token"] != tokens["access_token"]
    again = httpx.post(token_url, data=refresh)
    if prefix == "/google":  # Google keeps the refresh token
        assert "refresh_token" not in refreshed
        assert again.status_code == 200
    else:  # Microsoft rotates it: the old one stops working
        assert refreshed["refresh_token"] != tokens["refresh_token"]
        assert again.json()["error"] == "invalid_grant"
    info = httpx.post(f"{idp.url}{prefix}/introspect", data={"token": refreshed["access_token"]}).json()
    assert info["active"] is True and info["email"] == "carol@example.test"


def test_device_authorization_grant(idp: MockIdP):
    base = f"{idp.url}/microsoft/organizations/oauth2/v2.0"
    # RFC 8628 3.1: a confidential client authenticates here too; a public one sends its id
    unauthenticated = httpx.post(f"{base}/devicecode", data={"client_id": "test-client", "scope": "x"})
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"] == "invalid_client"
    public = httpx.post(f"{base}/devicecode", data={"client_id": "public-client", "scope": "x"})
    assert public.status_code == 200 and public.json()["user_code"]
    start = httpx.post(
        f"{base}/devicecode",
        data={"client_id": "test-client", "client_secret": "test-secret", "scope": "offline_access"},
    ).json()
    assert start["verification_uri"] and start["user_code"] and start["interval"] >= 1
    poll = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": start["device_code"],
        "client_id": "test-client",
        "client_secret": "test-secret",
    }
    assert httpx.post(f"{base}/token", data=poll).json()["error"] == "authorization_pending"
    assert httpx.post(f"{base}/token", data=poll).json()["error"] == "slow_down"
    httpx.post(
        f"{idp.url}/_test/device/approve", json={"user_code": start["user_code"], "email": "dev@example.test"}
    )
    time.sleep(start["interval"])
    tokens = httpx.post(f"{base}/token", data=poll).json()
    assert tokens["access_token"] and tokens["refresh_token"]


# --------------------------------------------------------------------------- databases


async def test_round_trip_through_the_database(database_url: str):
    engine = create_async_engine(database_url)
    table = f"bed_probe_{secrets.token_hex(4)}"
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
            await conn.execute(sa.text(f"INSERT INTO {table} (id, body) VALUES (1, :b)"), {"b": "héllo ✉"})
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text(f"SELECT body FROM {table}"))).scalar_one() == "héllo ✉"
            dialect = conn.dialect.name
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP TABLE {table}"))
    finally:
        await engine.dispose()
    assert dialect == ("sqlite" if database_url.startswith("sqlite") else "postgresql")
