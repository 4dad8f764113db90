"""The troubleshooting catalogue on POP3 failures: the server's ``-ERR`` words and RFC 2449 /
RFC 3206 response codes, STLS, another service on the POP3 port, a TLS port greeted in clear."""

from __future__ import annotations

import pytest

from mailport.diagnosis import Failure, ServerReply, diagnose
from mailport.servers import Security


def pop3_auth(line: str, host: str = "pop.example.com") -> Failure:
    return Failure(
        step="pop3_auth", protocol="pop3", host=host, port=995, auth="password", reply=ServerReply.pop3(line)
    )


def test_a_pop3_status_line_is_read_with_its_response_code() -> None:
    reply = ServerReply.pop3("-ERR [IN-USE] Mailbox locked by another session\r\n")
    assert (reply.status, reply.response_code, reply.text) == (
        "-ERR",
        "IN-USE",
        "Mailbox locked by another session",
    )
    assert reply.quoted() == "-ERR [IN-USE] Mailbox locked by another session"
    assert ServerReply.pop3("+OK done").status == "+OK"


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("-ERR [AUTH] Authentication failed.", "invalid_credentials"),  # Dovecot's words
        ("-ERR Logon failure", "invalid_credentials"),  # no code after PASS: the password
        ("-ERR [SYS/TEMP] Temporary authentication failure, try later", "auth_unavailable"),
        ("-ERR [IN-USE] Mailbox locked", "maildrop_busy"),
        ("-ERR [LOGIN-DELAY] wait 5 minutes between logins", "maildrop_busy"),
    ],
)
def test_sign_in_refusals_by_response_code(line: str, code: str) -> None:
    found = diagnose(pop3_auth(line))
    assert found.code == code
    assert found.server_said == line


def test_a_providers_words_over_pop3_get_its_advice() -> None:
    gmail = "-ERR [AUTH] Application-specific password required: https://support.google.com/accounts/answer/185833"
    assert diagnose(pop3_auth(gmail, host="pop.gmail.com")).code == "app_password_required"


def test_stls_not_offered_suggests_pop3s() -> None:
    found = diagnose(Failure(step="pop3_stls", protocol="pop3", host="pop.example.com", port=110))
    assert found.code == "starttls_not_offered" and "STLS" in found.detail
    assert [s.as_dict() for s in found.suggestions] == [{"port": 995, "security": Security.SSL}]


def test_an_imap_server_on_the_pop3_port_and_a_tls_port_greeted_in_clear() -> None:
    imap = Failure(step="greeting", protocol="pop3", host="h", port=110, received=b"* OK IMAP4rev1 ready\r\n")
    found = diagnose(imap)
    assert found.code == "wrong_service" and "not POP3" in found.detail
    assert {s.port for s in found.suggestions} == {995, 110}
    silent = Failure(step="greeting", protocol="pop3", host="h", port=995, security=Security.STARTTLS)
    assert diagnose(silent).code == "plaintext_on_tls_port"
