"""Pure helpers of the client: argument quoting, UID sets, modified UTF-7 mailbox names."""

from __future__ import annotations

from mailport.imap import quote, uid_set
from mailport.imap.arguments import Literal, imap_date, mailbox_arg
from mailport.imap.utf7 import decode, encode


def test_quote_picks_atom_quoted_or_literal() -> None:
    assert quote("INBOX") == b"INBOX"
    assert quote("two words") == b'"two words"'
    assert quote('a"b\\c') == b'"a\\"b\\\\c"'
    assert quote("NIL") == b'"NIL"'
    assert quote("") == b'""'
    literal = quote("p\u00e4ss")
    assert isinstance(literal, Literal) and literal.data == "p\u00e4ss".encode()
    assert isinstance(quote("a\r\nb"), Literal)


def test_uid_sets_are_compressed() -> None:
    assert uid_set([7, 1, 2, 3, 3, 9, 10]) == b"1:3,7,9:10"
    assert uid_set(5) == b"5"
    assert uid_set("5:*") == b"5:*"


def test_mailbox_names_in_modified_utf7() -> None:
    assert encode("Entw\u00fcrfe") == b"Entw&APw-rfe"
    assert decode(b"Entw&APw-rfe") == "Entw\u00fcrfe"
    assert decode(encode("\u65e5\u672c & more")) == "\u65e5\u672c & more"
    assert mailbox_arg("inbox") == b"INBOX"
    assert mailbox_arg("Entw\u00fcrfe") == b"Entw&APw-rfe"


def test_append_dates_are_utc() -> None:
    from datetime import datetime, timedelta, timezone

    when = datetime(2024, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert imap_date(when) == b'"01-Mar-2024 12:00:00 +0000"'
