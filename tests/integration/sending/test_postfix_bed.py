"""Proof that the Postfix bed is a real submission server (stdlib clients, protocol level):
TLS with the bed's certificate, SMTP AUTH through Dovecot, delivery into Dovecot over LMTP,
Postfix's own refusals, and a clean stop."""

from __future__ import annotations

import base64
import imaplib
import smtplib
import socket
import ssl
import subprocess
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import issue_token
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.idp import MockIdP
from tests.mailstack.postfix import Postfix, process_group, still_running


def message(subject: str, frm: str, to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = frm, to, subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    msg.set_content("hello from the Postfix bed")
    return msg


def submission(postfix: Postfix, user: str, password: str) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", postfix.submission_port, timeout=10)
    client.starttls(context=postfix.tls_context())
    client.login(user, password)
    return client


def wait_for(dovecot: Dovecot, user: str, password: str, subject: str, timeout: float = 15) -> bytes:
    """The raw message with ``subject`` in ``user``'s INBOX, polled over IMAP until it arrives."""
    deadline = time.monotonic() + timeout
    client = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
    client.login(user, password)
    try:
        while True:
            client.select("INBOX")
            found = client.uid("SEARCH", None, "HEADER", "Subject", f'"{subject}"')[1][0].split()
            if found:
                data = client.uid("FETCH", found[0], "(BODY.PEEK[])")[1]
                return bytes(data[0][1])  # type: ignore[index]
            if time.monotonic() > deadline:
                raise AssertionError(f"{subject!r} did not reach {user}'s INBOX")
            time.sleep(0.1)
    finally:
        client.logout()


def test_submission_with_starttls_and_dovecot_sasl_delivers_into_dovecot(postfix, dovecot, password_user):
    user, password = password_user
    rcpt, rcpt_password = dovecot.dyn_user(f"r{uuid.uuid4().hex[:10]}")
    subject = f"bed {uuid.uuid4().hex[:8]}"
    with submission(postfix, user, password) as client:
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[union-attr]
        assert client.does_esmtp and "8bitmime" in client.esmtp_features
        client.send_message(message(subject, user, rcpt))
    raw = wait_for(dovecot, rcpt, rcpt_password, subject)
    assert b"by mx.example.test (Postfix)" in raw  # Postfix's Received: header
    assert b"hello from the Postfix bed" in raw


def test_implicit_tls_port_and_its_certificate(postfix, password_user):
    user, password = password_user
    with smtplib.SMTP_SSL(
        "127.0.0.1", postfix.submissions_port, context=postfix.tls_context(), timeout=10
    ) as c:
        assert c.login(user, password)[0] == 235
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(
            "127.0.0.1", postfix.submissions_port, context=ssl.create_default_context(), timeout=10
        )


def test_no_auth_before_starttls_and_no_mail_without_auth(postfix, password_user):
    user, _ = password_user
    with smtplib.SMTP("127.0.0.1", postfix.submission_port, timeout=10) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features  # smtpd_tls_auth_only
        code, said = client.mail(user)
        assert code == 530 and b"STARTTLS" in said
        client.starttls(context=postfix.tls_context())
        client.ehlo()
        assert "PLAIN" in client.esmtp_features["auth"].split()
        assert client.mail(user)[0] == 250
        code, said = client.rcpt("someone@example.org")
        assert code == 554 and b"5.7.1" in said


def test_a_wrong_password_is_refused_by_dovecot(postfix, password_user):
    user, _ = password_user
    with smtplib.SMTP("127.0.0.1", postfix.submission_port, timeout=10) as client:
        client.starttls(context=postfix.tls_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(user, "not-the-password")
    assert refused.value.smtp_code == 535
    assert b"5.7.8" in refused.value.smtp_error


def test_xoauth2_through_postfix_is_checked_by_dovecot(postfix, idp: MockIdP, oauth_user):
    email, token = oauth_user
    with smtplib.SMTP("127.0.0.1", postfix.submission_port, timeout=10) as client:
        client.starttls(context=postfix.tls_context())
        client.ehlo()
        assert "XOAUTH2" in client.esmtp_features["auth"].split()
        blob = base64.b64encode(f"user={email}\x01auth=Bearer {token['access_token']}\x01\x01".encode())
        assert client.docmd("AUTH", f"XOAUTH2 {blob.decode()}")[0] == 235
    other = issue_token(idp, f"o{uuid.uuid4().hex[:10]}@example.test")
    with smtplib.SMTP("127.0.0.1", postfix.submission_port, timeout=10) as client:
        client.starttls(context=postfix.tls_context())
        client.ehlo()
        blob = base64.b64encode(f"user={email}\x01auth=Bearer {other['access_token']}\x01\x01".encode())
        code, _ = client.docmd("AUTH", f"XOAUTH2 {blob.decode()}")
        if code == 334:  # the JSON error challenge; the client answers with an empty line
            code, _ = client.docmd("")
        assert code == 535


def test_an_unknown_recipient_is_refused_in_postfixs_words(postfix, password_user):
    user, password = password_user
    with submission(postfix, user, password) as client:
        assert client.mail(user)[0] == 250
        code, said = client.rcpt("nosuch-person@example.test")
    assert code == 550
    assert said == (
        b"5.1.1 <nosuch-person@example.test>: Recipient address rejected: "
        b"User unknown in virtual mailbox table"
    )


def test_it_listens_on_its_two_loopback_ports_only(postfix):
    services = subprocess.run(
        ["postconf", "-c", str(postfix.config_directory), "-M"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    inet = sorted(line.split()[0] for line in services if line.split()[1] == "inet")
    assert inet == sorted(f"127.0.0.1:{p}" for p in (postfix.submission_port, postfix.submissions_port))


def test_stop_leaves_no_process_and_frees_the_ports(dovecot, mail_root: Path):
    assert dovecot.auth_port is not None
    server = Postfix(
        mail_root / f"postfix-{uuid.uuid4().hex[:8]}",
        lmtp_port=dovecot.lmtp_port,
        auth_port=dovecot.auth_port,
        cert=dovecot.root / "ssl/cert.pem",
        key=dovecot.root / "ssl/key.pem",
    ).start()
    try:
        assert server.pgid is not None
        # A session in progress: an smtpd serves it while the instance stops.
        with smtplib.SMTP("127.0.0.1", server.submission_port, timeout=10) as client:
            assert client.ehlo()[0] == 250
            members = process_group(server.pgid)
            assert server.pgid in members and len(members) >= 2  # the master, an smtpd, qmgr …
            server.stop()
            assert still_running(members) == []
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()
    finally:
        server.stop()
    for port in (server.submission_port, server.submissions_port):
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
