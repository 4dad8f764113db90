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


def test_exchange_html_only_ndr() -> None:
    found = bounce("exchange-html.eml")
    assert found.format == "exchange"
    (olga,) = found.recipients
    assert (olga.recipient, olga.action, olga.status) == ("olga@example.net", "failed", "5.1.1")
    assert olga.diagnostic is not None and "RESOLVER.ADR.RecipNotFound" in olga.diagnostic
    assert found.original_message_id == "send-0012@mailport.example.org"


def test_gmail_dsn_with_base64_text_part() -> None:
    found = bounce("gmail-dsn.eml")
    assert found.format == "dsn"  # the standard report wins over the wording
    (pia,) = found.recipients
    assert (pia.recipient, pia.status, pia.diagnostic) == (
        "pia@example.net",
        "5.0.0",
        "554 5.0.0 Message rejected",
    )
    assert found.reporting_mta == "googlemail.com"
    assert found.original_message_id == "send-0013@mailport.example.org"


def _dsn(per_message: str, per_recipient: str, original: str = "") -> bytes:
    text = (
        "From: MAILER-DAEMON@mx.example.com\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"{per_message}\r\n\r\n{per_recipient}\r\n"
        f"{original}--b--\r\n"
    )
    return text.encode()


def test_dsn_original_id_from_per_message_fields() -> None:
    found = classify(
        _dsn(
            "Reporting-MTA: dns; mx.example.com\r\nX-Original-Message-ID: <send-0014@mailport.example.org>",
            "Final-Recipient: rfc822; quentin@example.net\r\nAction: failed\r\nStatus: 5.7.1",
        )
    )
    assert isinstance(found, Bounce)
    assert found.original_message_id == "send-0014@mailport.example.org"
    assert found.recipients[0].status == "5.7.1"


def test_dsn_without_original_has_no_link() -> None:
    found = classify(
        _dsn(
            "Reporting-MTA: dns; mx.example.com",
            "Original-Recipient: rfc822; rose@example.net\r\nAction: failed",
        )
    )
    assert isinstance(found, Bounce)
    (rose,) = found.recipients
    # Only Original-Recipient given: it stands in for the final one; no Status means a hard failure.
    assert (rose.recipient, rose.status, rose.severity) == ("rose@example.net", None, "hard")
    assert found.original_message_id is None


def test_dsn_unknown_action_judged_by_status_class() -> None:
    found = classify(
        _dsn(
            "Reporting-MTA: dns; mx.example.com", "Final-Recipient: rfc822; sam@example.net\r\nStatus: 4.2.1"
        )
    )
    assert isinstance(found, Bounce)
    assert found.recipients[0].action == "delayed"
    assert not found.failed


def test_person_quoting_bounce_words_is_not_a_bounce() -> None:
    # A person's message (big body): the header-only look answers None before any full parse.
    raw = (
        b"From: tom@example.net\r\nSubject: Undeliverable?\r\n\r\n" + b"550 5.1.1 undeliverable\r\n" * 200_000
    )
    assert classify(raw) is None


_PREFIXES = [
    b"From: MAILER-DAEMON@x.example\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n',
    b'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n',
    b"From: MAILER-DAEMON@x.example\r\nSubject: failure notice\r\n\r\nThis is the mail system at host x.\r\n",
    b"From: postmaster@x.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n",
]
_PIECES = st.sampled_from(
    [
        b"--b\r\n",
        b"--b--\r\n",
        b"Content-Type: message/delivery-status\r\n\r\n",
        b"Content-Type: message/feedback-report\r\n\r\n",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"Content-Type: text/rfc822-headers\r\n\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Final-Recipient: rfc822; a@example.net\r\n",
        b"Final-Recipient: ;\r\n",
        b"Action: failed\r\n",
        b"Action: \r\n",
        b"Status: 5.1.1\r\n",
        b"Feedback-Type: abuse\r\n",
        b"Original-Rcpt-To: <>\r\n",
        b"Message-ID: <\r\n",
        b"<a@example.net>: 550\r\n",
        b"\r\n",
        b" folded\r\n",
        b"\xff\xfe\x00",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_PREFIXES), st.lists(st.one_of(_PIECES, st.binary(max_size=40)), max_size=30))
def test_report_shaped_garbage_never_raises(prefix: bytes, pieces: list[bytes]) -> None:
    found = classify(prefix + b"".join(pieces))
    assert found is None or isinstance(found, Bounce | Complaint | DeliveryNotice)


def test_postfix_delay_warning() -> None:
    found = bounce("postfix-delayed.eml")
    assert found.format == "postfix"
    (uma,) = found.recipients
    assert uma.recipient == "uma@example.net"
    assert uma.action == "delayed"
    assert uma.diagnostic == "connect to mx.example.net[198.51.100.30]:25: Connection timed out"
    assert uma.status is None
    assert not found.failed


def test_unknown_wording_from_mailer_daemon_by_subject() -> None:
    found = bounce("sendmail-plain.eml")
    assert found.format == "generic"
    (victor,) = found.recipients
    assert (victor.recipient, victor.action, victor.status) == ("victor@example.net", "failed", "5.1.1")
    assert victor.diagnostic is not None and "User unknown" in victor.diagnostic


def test_the_header_look_over_parsed_fields_passes_every_report_and_no_ordinary_mail() -> None:
    """Ingestion decides from the fields its parser split (``Message.headers``): every report of
    the corpus passes; auto-replies and a person's message do not, so they are not parsed again."""
    from mailport.messages import parse_message
    from mailport.messages.bounces import worth_classifying

    for path in sorted(CORPUS.glob("*.eml")):
        raw = path.read_bytes()
        fields = parse_message(raw, mailbox_id="m", folder="INBOX").headers
        assert worth_classifying(fields) == (classify(raw) is not None), path.name
    assert not worth_classifying([("From", "Postmaster Team <ops@example.net>"), ("Subject", "hi")])
    assert worth_classifying([("FROM", '"Mail Delivery System" <MAILER-DAEMON@mx.example.com>')])
    assert worth_classifying([("Content-Type", 'Multipart/Report; report-type="delivery-status"')])
    assert worth_classifying([("Return-Path", "<>"), ("Subject", "Undelivered")])
    assert not worth_classifying([("Return-Path", "<>"), ("Auto-Submitted", "auto-replied")])
    assert not worth_classifying([])


def test_a_read_receipt_is_not_a_bounce() -> None:
    raw = (
        b"From: Ann <ann@example.net>\r\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nThe message was displayed.\r\n"
        b"--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
        b"Final-Recipient: rfc822; ann@example.net\r\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\r\n"
        b"--b--\r\n"
    )
    assert classify(raw) is None
