"""Bounce and complaint recognition over the hand-written corpus in tests/data/bounces/."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailport.messages.bounces import Bounce, Complaint, DeliveryNotice, RecipientStatus, classify

CORPUS = Path(__file__).parents[2] / "data" / "bounces"


def load(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def bounce(name: str) -> Bounce:
    found = classify(load(name))
    assert isinstance(found, Bounce), found
    return found


def by_rcpt(found: Bounce) -> dict[str, RecipientStatus]:
    return {r.recipient: r for r in found.recipients}


def test_rfc3464_two_failed_recipients() -> None:
    found = bounce("rfc3464-failed-two.eml")
    assert found.format == "dsn"
    assert found.reporting_mta == "mx.example.com"
    assert found.original_message_id == "send-0001@mailport.example.org"
    assert found.failed and found.severity == "hard"
    rcpts = by_rcpt(found)
    assert list(rcpts) == ["alice@example.net", "bob@example.net"]
    alice = rcpts["alice@example.net"]
    assert alice.action == "failed"
    assert alice.status == "5.1.1"
    assert alice.original_recipient == "Alice@example.net"
    assert alice.remote_mta == "mail.example.net"
    assert alice.diagnostic == "550 5.1.1 <alice@example.net>... User unknown"
    assert alice.severity == "hard"
    # A folded Diagnostic-Code is unfolded.
    assert rcpts["bob@example.net"].diagnostic == "552 5.2.2 Mailbox full, try again never"
    assert rcpts["bob@example.net"].status == "5.2.2"


def test_rfc3464_delayed_is_not_a_failure() -> None:
    found = bounce("rfc3464-delayed.eml")
    (carol,) = found.recipients
    assert carol.action == "delayed"
    assert carol.status == "4.4.7"
    assert carol.severity == "soft"
    assert not found.failed
    assert found.severity == "soft"
    # The original from a message/rfc822 part.
    assert found.original_message_id == "send-0002@mailport.example.org"


def test_rfc3464_delivered_is_a_success_notice() -> None:
    found = classify(load("rfc3464-delivered.eml"))
    assert isinstance(found, DeliveryNotice)
    (dave,) = found.recipients
    assert (dave.recipient, dave.action, dave.status, dave.severity) == (
        "dave@example.net",
        "delivered",
        "2.0.0",
        None,
    )
    assert found.original_message_id == "send-0003@mailport.example.org"


def test_rfc3464_mixed_report_keeps_only_the_problem_recipients() -> None:
    found = bounce("rfc3464-mixed.eml")
    (frank,) = found.recipients
    assert frank.recipient == "frank@example.net"
    assert frank.action == "failed"
    assert frank.status == "4.4.1"
    assert frank.severity == "soft"  # failed with a 4.x.x status: temporary by its class
    assert frank.diagnostic is not None and "Connection timed out" in frank.diagnostic
    assert found.original_message_id == "send-0004@mailport.example.org"


def test_postfix_plain_text_bounce() -> None:
    found = bounce("postfix-plain.eml")
    assert found.format == "postfix"
    rcpts = by_rcpt(found)
    assert list(rcpts) == ["gina@example.net", "hank@example.net"]
    gina = rcpts["gina@example.net"]
    assert (gina.action, gina.status, gina.severity) == ("failed", "5.1.1", "hard")
    assert gina.diagnostic is not None
    assert "User unknown in virtual mailbox table (in reply to RCPT TO command)" in gina.diagnostic
    assert rcpts["hank@example.net"].status == "4.2.2"
    assert rcpts["hank@example.net"].severity == "soft"
    assert found.original_message_id == "send-0005@mailport.example.org"


def test_exim_bounce() -> None:
    found = bounce("exim.eml")
    assert found.format == "exim"
    (ivy,) = found.recipients
    assert (ivy.recipient, ivy.action, ivy.status) == ("ivy@example.net", "failed", "5.1.1")
    assert ivy.diagnostic is not None and ivy.diagnostic.endswith("550 5.1.1 No such user here")
    # The quoted copy's To: address is not taken for a failed recipient; its Message-ID links.
    assert found.original_message_id == "send-0006@mailport.example.org"


def test_exim_delay_warning() -> None:
    found = bounce("exim-delayed.eml")
    (jack,) = found.recipients
    assert (jack.recipient, jack.action, jack.status) == ("jack@example.net", "delayed", "4.7.1")
    assert jack.diagnostic is not None and "Greylisted" in jack.diagnostic
    assert "No action is required" not in jack.diagnostic
    assert not found.failed
    assert found.original_message_id == "send-0007@mailport.example.org"


def test_exchange_ndr() -> None:
    found = bounce("exchange.eml")
    assert found.format == "exchange"
    (kate,) = found.recipients
    assert (kate.recipient, kate.action, kate.status) == ("kate@example.net", "failed", "5.1.10")
    assert kate.diagnostic is not None and "RESOLVER.ADR.RecipientNotFound" in kate.diagnostic
    assert found.original_message_id == "send-0008@mailport.example.org"


def test_gmail_address_not_found() -> None:
    found = bounce("gmail.eml")
    assert found.format == "gmail"
    (liam,) = found.recipients
    assert (liam.recipient, liam.action, liam.status) == ("liam@example.net", "failed", "5.1.1")
    assert liam.diagnostic is not None and "does not exist" in liam.diagnostic
    assert found.original_message_id == "send-0009@mailport.example.org"


def test_qmail_bounce() -> None:
    found = bounce("qmail.eml")
    assert found.format == "qmail"
    rcpts = by_rcpt(found)
    assert list(rcpts) == ["mona@example.net", "ned@example.net"]
    assert rcpts["mona@example.net"].status == "5.1.1"
    assert rcpts["ned@example.net"].diagnostic == "Sorry, no mailbox here by that name. (#5.1.1)"
    assert rcpts["ned@example.net"].status == "5.1.1"
    assert found.original_message_id == "send-0010@mailport.example.org"


def test_arf_complaint() -> None:
    found = classify(load("arf-abuse.eml"))
    assert found == Complaint(
        feedback_type="abuse",
        user_agent="SomeGenerator/1.0",
        original_mail_from="somespammer@example.org",
        original_rcpt_to=("user@example.com", "other@example.com"),
        arrival_date="Thu, 3 Dec 2026 10:50:00 +0000",
        source_ip="192.0.2.1",
        reported_domain="example.org",
        original_message_id="send-0011@mailport.example.org",
    )


@pytest.mark.parametrize(
    "name", ["out-of-office.eml", "precedence-autoreply.eml", "ordinary-undeliverable.eml"]
)
def test_not_bounces(name: str) -> None:
    assert classify(load(name)) is None


def test_every_corpus_file_is_covered() -> None:
    names = {p.name for p in CORPUS.glob("*.eml")}
    assert len(names) >= 14
    for name in names:
        classify(load(name))  # none raises


def test_report_without_status_part_is_not_a_bounce() -> None:
    raw = (
        b"From: a@example.net\r\nContent-Type: multipart/report; report-type=delivery-status;"
        b' boundary="x"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n--x--\r\n'
    )
    assert classify(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe",
        b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nno boundary",
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: message/feedback-report\r\n\r\n--b--",
        b"From: MAILER-DAEMON@x\r\nSubject: failure notice\r\n\r\n<@>: \r\n",
        b"From: MAILER-DAEMON@x\r\nContent-Type: text/plain; charset=no-such-charset\r\n\r\n"
        b"This is the mail system at host x.\r\n\r\n<a@example.net>: 550 5.1.1 gone\r\n",
    ],
)
def test_malformed_input_never_raises(raw: bytes) -> None:
    found = classify(raw)
    assert found is None or isinstance(found, Bounce | Complaint | DeliveryNotice)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise(raw: bytes) -> None:
    found = classify(raw)
    assert found is None or isinstance(found, Bounce | Complaint | DeliveryNotice)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(p.name for p in CORPUS.glob("*.eml"))),
    st.integers(min_value=0, max_value=4000),
    st.binary(max_size=64),
)
def test_mangled_corpus_never_raises(name: str, cut: int, noise: bytes) -> None:
    raw = load(name)
    mangled = raw[:cut] + noise + raw[cut + len(noise) :]
    found = classify(mangled)
    assert found is None or isinstance(found, Bounce | Complaint | DeliveryNotice)
