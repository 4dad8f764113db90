"""The answer's shape, the one-line summary for ``last_error``, deadlines, and the server's words
rebuilt from the clients' errors — pure, no I/O."""

from __future__ import annotations

import pytest

from mailport.check import CheckCredentials, CheckResult, ProtocolResult, StepResult
from mailport.check.schemas import CheckRequest
from mailport.check.steps import Deadline, StepRecorder, reply_of
from mailport.crypto import Secret
from mailport.errors import (
    AuthenticationError,
    CommandError,
    ConnectError,
    ConnectionLostError,
    SMTPRejectedError,
)


def test_the_answer_shape() -> None:
    imap = ProtocolResult("imap", [StepResult("dns", True, 0.4, "127.0.0.1")])
    smtp = ProtocolResult(
        "smtp",
        [
            StepResult("dns", True, 0.1, "127.0.0.1"),
            StepResult(
                "smtp_auth", False, 12.5, "refused", "invalid_credentials", "Check it.", "535 5.7.8 no"
            ),
        ],
    )
    body = CheckResult(imap, smtp).to_dict()
    assert body == {
        "ok": False,
        "imap": {"ok": True, "steps": [{"step": "dns", "ok": True, "ms": 0.4, "detail": "127.0.0.1"}]},
        "smtp": {
            "ok": False,
            "steps": [
                {"step": "dns", "ok": True, "ms": 0.1, "detail": "127.0.0.1"},
                {
                    "step": "smtp_auth",
                    "ok": False,
                    "ms": 12.5,
                    "detail": "refused",
                    "code": "invalid_credentials",
                    "hint": "Check it.",
                    "server_said": "535 5.7.8 no",
                },
            ],
        },
    }
    assert CheckResult(imap).to_dict()["smtp"] is None and CheckResult(imap).ok
    assert CheckResult(ProtocolResult("imap")).ok is False  # no steps ran: not ok


def test_summary_for_last_error() -> None:
    failing = ProtocolResult(
        "imap", [StepResult("authentication", False, 3, "Refused.", "app_password_required", "h", "NO x")]
    )
    assert (
        CheckResult(failing).summary()
        == "imap authentication [app_password_required]: Refused. — server said: NO x"
    )
    assert CheckResult(ProtocolResult("imap", [StepResult("dns", True, 1, "ok")])).summary() is None


def test_credentials_never_show_the_secret() -> None:
    credentials = CheckCredentials("me@example.test", password=Secret("hunter2-secret"))
    assert "hunter2" not in repr(credentials) and credentials.kind == "password"
    with pytest.raises(ValueError):
        CheckCredentials("me@example.test")
    with pytest.raises(ValueError):
        CheckCredentials("me@example.test", password=Secret("a"), access_token=Secret("b"))


def test_deadline_caps_each_step_by_what_is_left() -> None:
    now = [100.0]
    deadline = Deadline(total=20, step=10, clock=lambda: now[0])
    assert deadline.for_step() == 10
    now[0] = 115.0
    assert deadline.for_step() == 5 and deadline.for_step(cap=2) == 2
    now[0] = 130.0
    assert deadline.remaining() == 0 and deadline.for_step() == 0.001


def test_ms_is_measured_on_the_clock() -> None:
    now = [5.0]
    rec = StepRecorder(
        ProtocolResult("imap"),
        host="h",
        port=993,
        security="ssl",
        auth="password",
        provider=None,
        clock=lambda: now[0],
    )
    started = rec.start()
    now[0] = 5.2345
    rec.ok("dns", started, "fine")
    assert rec.result.steps[0].ms == 234.5


@pytest.mark.parametrize(
    ("protocol", "error", "quoted"),
    [
        ("imap", CommandError("x", server_said="[ALERT] Go away", status="BAD"), "BAD [ALERT] Go away"),
        (
            "imap",
            AuthenticationError("x", server_said="[AUTHENTICATIONFAILED] no"),
            "NO [AUTHENTICATIONFAILED] no",
        ),
        ("imap", ConnectionLostError("x", server_said="[UNAVAILABLE] bye"), "BYE [UNAVAILABLE] bye"),
        ("imap", ConnectError("x", server_said="Too many", status="BYE"), "BYE Too many"),
        ("smtp", AuthenticationError("x", server_said="5.7.8 Bad", smtp_code=535), "535 5.7.8 Bad"),
        ("smtp", SMTPRejectedError("x", server_said="too busy", smtp_code=421), "421 too busy"),
    ],
)
def test_server_words_from_client_errors(protocol: str, error: Exception, quoted: str) -> None:
    reply = reply_of(protocol, error)
    assert reply is not None and reply.quoted() == quoted


def test_no_words_no_reply() -> None:
    assert reply_of("imap", TimeoutError()) is None
    assert reply_of("smtp", AuthenticationError("x", server_said="no code")) is None


def test_request_needs_one_credential_and_a_user() -> None:
    imap = {"host": "imap.example.com", "port": 993, "security": "ssl"}
    request = CheckRequest.model_validate({"email": "A@Example.com", "imap": imap, "password": "pw"})
    credentials = request.credentials()
    assert credentials.username == "A@example.com" and credentials.password == Secret("pw")
    assert "pw" not in repr(request)
    for bad in (
        {"email": "a@example.com", "imap": imap},
        {"imap": imap, "password": "pw"},
        {"email": "a@example.com", "imap": imap, "password": "pw", "access_token": "t"},
        {"email": "a@example.com", "imap": imap, "password": "p\nw"},
    ):
        with pytest.raises(ValueError):
            CheckRequest.model_validate(bad)


def test_an_unusable_ca_is_invalid_input_not_a_crash() -> None:
    from mailport.errors import InputError
    from mailport.net.trust import MailTrust

    for bad in ("not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"):
        with pytest.raises(InputError) as info:
            MailTrust().adding(ca_pem=bad)
        assert info.value.details["field"] == "ca_pem"
    with pytest.raises(InputError):
        MailTrust(ca_files=["/nonexistent/ca.pem"])
    with pytest.raises(InputError) as info:
        MailTrust().adding(ca_file=__file__)  # exists, but is no PEM
    assert info.value.details["field"] == "ca_file"
