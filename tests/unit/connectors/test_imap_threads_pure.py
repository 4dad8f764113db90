"""The pure parts of IMAP threads: the header keys that find a conversation's messages, bare
Message-IDs, membership of a server-side thread's candidates, and merging folders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailport.connectors.base import MessageRef
from mailport.connectors.imap_threads import _members, _merge, bare, referring_keys
from mailport.connectors.mail import Envelope, MessageSummary
from mailport.imap.arguments import Literal
from tests.unit.imap.test_search_keys import wire

T0 = datetime(2025, 6, 2, tzinfo=UTC)


def test_ids_are_searched_with_their_brackets_in_three_headers() -> None:
    keys, charset = referring_keys(["root@x.test"])
    assert charset is None
    assert wire(keys) == (
        b'OR OR HEADER Message-ID "<root@x.test>" HEADER References "<root@x.test>" '
        b'HEADER In-Reply-To "<root@x.test>"'
    )
    keys, _ = referring_keys(["<a@x>", "b@x"], own=False)
    assert wire(keys) == (
        b'OR OR OR HEADER References "<a@x>" HEADER In-Reply-To "<a@x>" '
        b'HEADER References "<b@x>" HEADER In-Reply-To "<b@x>"'
    )


def test_an_id_that_is_not_ascii_is_a_literal_with_charset() -> None:
    keys, charset = referring_keys(["größe@x.test"], own=False)
    assert charset == "UTF-8" and isinstance(keys[3], Literal)
    assert keys[3].data == "<größe@x.test>".encode()


def test_bare_ids() -> None:
    assert bare(" <a@b> ") == "a@b" and bare("a@b") == "a@b" and bare("<a@b") == "<a@b"


def summary(folder: str, uid: int, message_id: str | None, **envelope: object) -> MessageSummary:
    return MessageSummary(
        MessageRef(folder, "1", str(uid)),
        folder,
        Envelope(message_id=message_id, date=T0 + timedelta(minutes=uid), **envelope),  # type: ignore[arg-type]
        thread_root=envelope.get("in_reply_to") or message_id,  # type: ignore[arg-type]
    )


def test_a_candidate_belongs_by_its_root_parent_or_own_id() -> None:
    known = {"root@x", "a1@x"}
    assert _members(summary("INBOX", 1, "s4@x", in_reply_to="a1@x"), known)
    assert _members(summary("INBOX", 2, "root@x"), known)
    assert not _members(summary("INBOX", 3, "stranger@y", subject="Re: Angebot"), known)


def test_merging_folders_gives_each_message_once_oldest_first() -> None:
    found = {
        "INBOX": {
            5: summary("INBOX", 5, "m5@x"),
            1: summary("INBOX", 1, "m1@x"),
            7: summary("INBOX", 7, None),
        },
        "Sent": {2: summary("Sent", 2, "m2@x")},
        "All": {1: summary("All", 1, "m1@x"), 3: summary("All", 3, "m3@x"), 9: summary("All", 9, "m2@x")},
    }
    merged = _merge(found, ["INBOX", "Sent", "All"])
    assert [(s.folder, s.envelope.message_id) for s in merged] == [
        ("INBOX", "m1@x"),
        ("Sent", "m2@x"),
        ("All", "m3@x"),
        ("INBOX", "m5@x"),
        ("INBOX", None),
    ]
