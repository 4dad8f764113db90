"""One header block → observations: roles, direction, policy, folding, exclusions."""

from __future__ import annotations

from datetime import UTC, datetime

from mailport.contacts import Identity, Observation, harvest

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)
ME = Identity.of(["me@example.com"])
BLOCK = (
    b"Received: from a by b; Mon, 2 Nov 2026 09:00:00 +0000\r\n"
    b"From: =?utf-8?Q?Ren=C3=A9e?= <Renee@Example.org>\r\n"
    b"Reply-To: Renee <renee@example.org>\r\n"
    b'To: me@example.com,\r\n\t"Smith, Paul" <paul@example.net>\r\n'
    b"Cc: Zoe <zoe+cc@gmail.com>\r\n"
    b"Bcc: hidden@example.com\r\n"
    b"Subject: hi\r\n"
)


def test_received_mail_gives_from_reply_to_to_and_cc_in_header_order() -> None:
    observations = harvest(BLOCK, "received", AT, identity=ME)

    assert observations == [
        Observation("renee@example.org", "Renee@Example.org", "Renée", "from", "received", AT),
        Observation("renee@example.org", "renee@example.org", "Renee", "reply_to", "received", AT),
        Observation("me@example.com", "me@example.com", "", "to", "received", AT, "own_address"),
        Observation("paul@example.net", "paul@example.net", "Smith, Paul", "to", "received", AT),
        Observation("zoe+cc@gmail.com", "zoe+cc@gmail.com", "Zoe", "cc", "received", AT),
    ]  # Bcc of received mail is not read: only the sender's copy has it


def test_sent_mail_gives_every_recipient_and_not_the_sender() -> None:
    roles = [(o.key, o.role) for o in harvest(BLOCK, "sent", AT, identity=ME, fold=True)]

    assert roles == [
        ("me@example.com", "to"),
        ("paul@example.net", "to"),
        ("zoe@gmail.com", "cc"),
        ("hidden@example.com", "bcc"),
    ]


def test_policy_sent_only_and_off() -> None:
    assert harvest(BLOCK, "received", AT, identity=ME, policy="sent_only") == []
    assert len(harvest(BLOCK, "sent", AT, identity=ME, policy="sent_only")) == 4
    assert harvest(BLOCK, "sent", AT, identity=ME, policy="off") == []


def test_a_message_level_exclusion_applies_to_every_address_of_the_message() -> None:
    block = BLOCK + b"List-Id: <team.example.org>\r\n"
    reasons = {(o.key, o.excluded) for o in harvest(block, "received", AT, identity=ME)}

    assert reasons == {
        ("renee@example.org", "mailing_list"),
        ("me@example.com", "own_address"),  # the address's own reason wins
        ("paul@example.net", "mailing_list"),
        ("zoe+cc@gmail.com", "mailing_list"),
    }


def test_garbage_never_raises() -> None:
    for block in (b"", b"\xff\xfe\x00", b"From: \r\nTo: ,,,;;<>@@\r\n", b"To: =?utf-8?B?@@@?= <@>\r\n"):
        assert harvest(block, "received", AT, identity=ME) == []
    lone = harvest(b"From: <a@b.c>\r\nTo: undisclosed-recipients:;\r\n", "received", AT, identity=ME)
    assert [o.key for o in lone] == ["a@b.c"]
