"""Contact export: CSV read back with :mod:`csv`, vCard 4.0 read back with ``vobject`` (an
independent parser), for hostile names, many addresses and empty fields; and the CSV
formula-injection guard."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import vobject

from mailport.contacts.export import (
    CSV_COLUMNS,
    MULTI_VALUE_SEPARATOR,
    ContactCard,
    contact_uid,
    csv_rows,
    vcard,
    vcards,
)

FIRST = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
LAST = datetime(2026, 11, 30, 17, 45, 12, tzinfo=UTC)

HOSTILE = [
    ContactCard(
        id="c-comma",
        display_name="Doe, Jane",
        emails=("jane@example.test",),
        organisation="Acme, Inc.",
        groups=("Clients, EU", "VIP"),
        first_seen=FIRST,
        last_seen=LAST,
        sent_to=12,
        received_from=30,
        two_way=True,
        score=41.25,
    ),
    ContactCard(
        id="c-semicolon",
        display_name="O;Brien; Séamus \\ the \\n backslash",
        emails=("seamus@example.test", "s.obrien@corp.example.test"),
        organisation="Research; Development",
        groups=("a;b", "c\\d"),
        last_seen=LAST,
    ),
    ContactCard(
        id="c-newline",
        display_name="Line one\nLine two\r\nLine three\rend",
        emails=("lines@example.test",),
        organisation="Multi\nline org",
    ),
    ContactCard(
        id="c-unicode",
        display_name="Zoë Ångström-Łukasiewicz 山田太郎 🎉🎉🎉 " + "é" * 40 + "日本語" * 20,
        emails=("zoë@exämple.test", "yamada@例え.テスト"),
        organisation="Société Générale des Émojis 🎉",
        groups=("Équipe", "チーム"),
        first_seen=FIRST,
        last_seen=LAST,
    ),
    ContactCard(
        id="c-many",
        display_name="Many Addresses",
        emails=tuple(f"person{n}@host{n}.example.test" for n in range(25)),
        groups=tuple(f"group {n}" for n in range(15)),
        sent_to=1,
    ),
    ContactCard(id="c-empty", display_name=None, emails=("only@example.test",)),
    ContactCard(id="c-blank", display_name="   ", emails=("blank@example.test",), organisation=""),
    ContactCard(id="c-nothing", display_name="", emails=()),
]


def expected_name(card: ContactCard) -> str:
    name = (card.display_name or "").strip() or (card.emails[0] if card.emails else "")
    return re.sub(r"\r\n|\r", "\n", name)


def vcf_text(cards: list[ContactCard]) -> str:
    return b"".join(vcards(cards)).decode("utf-8")


# ---------------------------------------------------------------- vCard


def test_vcards_round_trip_through_vobject() -> None:
    parsed = list(vobject.readComponents(vcf_text(HOSTILE)))
    assert len(parsed) == len(HOSTILE)
    for card, component in zip(HOSTILE, parsed, strict=True):
        assert component.version.value == "4.0"
        assert component.fn.value == expected_name(card)
        emails = component.contents.get("email", [])
        assert [line.value for line in emails] == list(card.emails)
        assert [line.params.get("PREF") for line in emails] == [["1"], *[None] * (len(card.emails) - 1)][
            : len(card.emails)
        ]
        if card.organisation:
            assert component.org.value == [card.organisation.replace("\r\n", "\n").replace("\r", "\n")]
        else:
            assert "org" not in component.contents
        if card.groups:
            assert component.categories.value == list(card.groups)
        else:
            assert "categories" not in component.contents
        assert component.uid.value == contact_uid(card.id)
        assert "n" not in component.contents


def test_rev_is_the_last_change_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    card = ContactCard(
        id="r",
        display_name="R",
        emails=("r@example.test",),
        updated_at=datetime(2026, 1, 2, 4, 5, 6, tzinfo=paris),
    )
    [component] = vobject.readComponents(vcard(card).decode())
    assert component.rev.value == "20260102T030506Z"
    [from_last_seen] = vobject.readComponents(vcard(HOSTILE[0]).decode())
    assert from_last_seen.rev.value == "20261130T174512Z"
    [without] = vobject.readComponents(vcard(HOSTILE[4]).decode())
    assert "rev" not in without.contents


def test_uid_is_a_stable_urn_uuid_per_contact() -> None:
    assert contact_uid("c-1") == contact_uid("c-1")
    assert contact_uid("c-1") != contact_uid("c-2")
    assert re.fullmatch(
        r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", contact_uid("x")
    )


def test_escaping_on_the_wire() -> None:
    text = vcard(HOSTILE[1]).decode()
    unfolded = text.replace("\r\n ", "")
    assert "FN:O\\;Brien\\; Séamus \\\\ the \\\\n backslash\r\n" in unfolded
    assert "ORG:Research\\; Development\r\n" in unfolded
    assert "CATEGORIES:a\\;b,c\\\\d\r\n" in unfolded
    newline = vcard(HOSTILE[2]).decode().replace("\r\n ", "")
    assert "FN:Line one\\nLine two\\nLine three\\nend\r\n" in newline


def test_lines_fold_at_75_octets_without_splitting_utf8() -> None:
    data = b"".join(vcards(HOSTILE))
    assert data.endswith(b"END:VCARD\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    physical = data.split(b"\r\n")[:-1]
    assert max(len(line) for line in physical) <= 75
    folded = [line for line in physical if line.startswith(b" ")]
    assert len(folded) >= 4  # the long name, organisation and group lists
    for line in physical:
        line.decode("utf-8")  # every physical line is whole UTF-8: no sequence split across a fold
    multibyte_folds = [line for line in folded if line[1] >= 0x80]
    assert multibyte_folds, "the corpus must exercise a fold right before a multibyte character"


def test_fold_boundary_lengths() -> None:
    for length in range(70, 160):
        card = ContactCard(id="f", display_name="x" * length, emails=())
        data = vcard(card)
        lines = data.split(b"\r\n")[:-1]
        assert all(len(line) <= 75 for line in lines)
        [component] = vobject.readComponents(data.decode())
        assert component.fn.value == "x" * length
    for width in range(1, 5):  # ASCII prefix shifting a 4-byte character across every fold offset
        name = "a" * width + "🎉" * 40
        data = vcard(ContactCard(id="e", display_name=name, emails=()))
        assert all(len(line) <= 75 for line in data.split(b"\r\n"))
        [component] = vobject.readComponents(data.decode())
        assert component.fn.value == name


def test_control_characters_are_dropped() -> None:
    card = ContactCard(id="ctl", display_name="Bell\x07 and\x00 nul\ttab", emails=("ctl@example.test",))
    [component] = vobject.readComponents(vcard(card).decode())
    assert component.fn.value == "Bell and nul\ttab"


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        vcard(ContactCard(id="n", display_name="N", emails=(), last_seen=datetime(2026, 1, 1)))


def test_vcards_stream_one_chunk_per_contact() -> None:
    produced = 0

    def lazy() -> Iterator[ContactCard]:
        nonlocal produced
        for n in range(100_000):
            produced += 1
            yield ContactCard(id=str(n), display_name=f"Person {n}", emails=(f"p{n}@example.test",))

    stream = vcards(lazy())
    first = next(stream)
    assert produced == 1
    assert first.startswith(b"BEGIN:VCARD\r\nVERSION:4.0\r\n")
    csv_stream = csv_rows(lazy())
    assert next(csv_stream) == ",".join(CSV_COLUMNS) + "\r\n"
    next(csv_stream)
    assert produced == 2


# ---------------------------------------------------------------- CSV


def read_csv(cards: list[ContactCard]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO("".join(csv_rows(cards)), newline="")))


def test_csv_round_trips_through_the_csv_module() -> None:
    rows = read_csv(HOSTILE)
    assert len(rows) == len(HOSTILE)
    for card, row in zip(HOSTILE, rows, strict=True):
        assert list(row) == list(CSV_COLUMNS)
        assert row["display_name"] == (card.display_name or "")
        assert row["primary_email"] == (card.emails[0] if card.emails else "")
        others = row["other_emails"].split(MULTI_VALUE_SEPARATOR) if row["other_emails"] else []
        assert others == list(card.emails[1:])
        assert row["organisation"] == (card.organisation or "")
        assert (row["groups"].split(MULTI_VALUE_SEPARATOR) if row["groups"] else []) == list(card.groups)
        assert row["first_seen"] == (
            card.first_seen.strftime("%Y-%m-%dT%H:%M:%SZ") if card.first_seen else ""
        )
        assert row["last_seen"] == (card.last_seen.strftime("%Y-%m-%dT%H:%M:%SZ") if card.last_seen else "")
        assert int(row["sent_to"]) == card.sent_to
        assert int(row["received_from"]) == card.received_from
        assert row["two_way"] == ("true" if card.two_way else "false")
        assert float(row["score"]) == card.score


def test_csv_uses_crlf_and_quotes_embedded_newlines() -> None:
    text = "".join(csv_rows([HOSTILE[2]]))
    assert text.startswith(",".join(CSV_COLUMNS) + "\r\n")
    assert '"Line one\nLine two\r\nLine three\rend"' in text


@pytest.mark.parametrize(
    "hostile",
    [
        '=HYPERLINK("http://evil.test","x")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_csv_neutralises_formula_cells(hostile: str) -> None:
    card = ContactCard(
        id="inj",
        display_name=hostile,
        emails=(hostile, hostile),
        organisation=hostile,
        groups=(hostile, "safe"),
    )
    [row] = read_csv([card])
    for column in ("display_name", "primary_email", "other_emails", "organisation", "groups"):
        assert row[column].startswith("'" + hostile[0]), column
    assert row["display_name"] == "'" + hostile
    assert row["groups"] == "'" + hostile + MULTI_VALUE_SEPARATOR + "safe"


def test_csv_leaves_ordinary_cells_alone() -> None:
    [row] = read_csv(
        [ContactCard(id="ok", display_name="Ann = Bob", emails=("a-b@example.test",), score=-0.5)]
    )
    assert row["display_name"] == "Ann = Bob"
    assert row["primary_email"] == "a-b@example.test"
    assert row["score"] == "-0.5"  # numbers we generate are not text from mail: left numeric
