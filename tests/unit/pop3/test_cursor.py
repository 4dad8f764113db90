"""The POP3 cursor position: a bounded set of ingested unique ids, and arrival dates for the
first sync."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailport.connectors.pop3 import arrival
from mailport.connectors.pop3_cursor import MAX_REMEMBERED, Remembered
from mailport.errors import InvalidCursorError


def test_round_trip_and_empty() -> None:
    remembered = Remembered(("a", "b", "c"))
    assert Remembered.decode(remembered.encode()) == remembered
    assert Remembered.decode("") == Remembered()
    assert Remembered.decode(Remembered().encode()) == Remembered()


@pytest.mark.parametrize("bad", ["garbage", "p1:!!!", "p1:" + "A" * 10])
def test_not_a_position(bad: str) -> None:
    with pytest.raises(InvalidCursorError):
        Remembered.decode(bad)


def test_ids_the_server_no_longer_lists_are_forgotten() -> None:
    remembered = Remembered(("a", "b", "c"))
    after = remembered.after(["b", "c", "d"], ["d"])
    assert after == Remembered(("b", "c", "d"))
    assert after.seen(["b", "c", "d", "e"]) == {"b", "c", "d"}


def test_the_cap_keeps_the_newest_and_counts_older_ones_as_seen() -> None:
    listed = [f"id{n}" for n in range(10)]
    capped = Remembered().after(listed, listed, limit=4)
    assert capped.ids == ("id6", "id7", "id8", "id9") and capped.capped
    # older messages the set forgot are still taken as ingested; a new one is not
    assert capped.seen([*listed, "new"]) == set(listed)
    # once the older ones are gone, the cursor is exact again
    assert capped.after(listed[6:], []) == Remembered(("id6", "id7", "id8", "id9"))


def test_a_full_cursor_stays_small() -> None:
    ids = tuple(f"{n:08X}6b13ffc6" for n in range(1, MAX_REMEMBERED + 1))
    assert len(Remembered(ids).encode()) < 70_000


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            b"Received: from a by mail.example.test; Tue, 03 Jan 2023 10:00:00 +0100\r\n"
            b"Received: from b by a; Tue, 03 Jan 2023 08:00:00 +0000\r\n"
            b"Date: Mon, 02 Jan 2023 10:00:00 +0000\r\n\r\n",
            datetime(2023, 1, 3, 9, 0, tzinfo=UTC),
        ),
        (
            b"Received: from a\r\n by mail.example.test;\r\n Tue, 03 Jan 2023 10:00:00 +0000\r\n\r\n",
            datetime(2023, 1, 3, 10, 0, tzinfo=UTC),
        ),
        (
            b"Date: Mon, 02 Jan 2023 10:00:00 +0000\r\nSubject: x\r\n\r\n",
            datetime(2023, 1, 2, 10, 0, tzinfo=UTC),
        ),
        (b"Subject: no date\r\n\r\n", None),
        (b"Date: not a date\r\n\r\n", None),
    ],
)
def test_arrival(headers: bytes, expected: datetime | None) -> None:
    assert arrival(headers) == expected
