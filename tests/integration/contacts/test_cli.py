"""``mailport contacts …`` in-process (the console script's ``main``, as
tests/integration/store/test_cli.py runs it) on a book filled through the harvest's write path
from real header blocks: the table and the API's JSON, filters and pages, show with the history,
CSV and vCard exports, delete and merge, owner and tenant isolation, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import vobject

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.config import Settings
from mailport.contacts import schedule
from mailport.mailboxes.schemas import ContactsPatch, MailboxUpdate, SettingsPatch
from tests.fixtures.api import TenantHandle, create_tenant
from tests.integration.contacts.seeded import XSS_NAME, Seeded, seed
from tests.integration.mail.conftest import MailBox, add_mailbox, letter, new_box
from tests.integration.mail.test_cli import cli
from tests.integration.store.test_cli import Cli, Result, one_line_error
from tests.mailstack.dovecot import Dovecot

__all__ = ["cli"]  # the fixture: the CLI on the test's database, 127.0.0.1 allowed


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The sync test's Dovecot listens on 127.0.0.1: the operator allows exactly that address."""
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


@pytest.fixture
async def book(services: Services, tenant: TenantHandle) -> Seeded:
    return await seed(services, tenant.id)


def listed(cli: Cli, tenant: str, *args: str) -> list[dict[str, object]]:
    return list(json.loads(cli("contacts", "list", "-t", tenant, "--json", *args).stdout)["items"])


def test_the_list_as_a_table_and_as_json(cli: Cli, book: Seeded, tenant: TenantHandle) -> None:
    table = cli("contacts", "list", "-t", tenant.name).stdout
    lines = table.splitlines()
    header = next(line for line in lines if "organisation" in line)
    for column in ("name", "email", "organisation", "sent/received", "two-way", "score", "last seen"):
        assert column in header
    joerg = next(line for line in lines if "joerg@example.de" in line)
    assert "Jörg Müller" in joerg and "example.de" in joerg and "1/2" in joerg and "yes" in joerg
    assert XSS_NAME in table  # a terminal shows the name as it is
    assert "noreply@shop.example" not in table and "bob@lists.example" not in table

    data = listed(cli, tenant.id)
    assert [c["email"] for c in data][0] == "joerg@example.de"  # two-way: the highest score
    assert {c["email"] for c in data} == {"joerg@example.de", "ann@partner.example", "mallory@evil.example"}
    joerg_json = data[0]
    assert joerg_json["id"] == book.ids["joerg@example.de"] and joerg_json["two_way"] is True
    assert (joerg_json["sent_to"], joerg_json["received_from"]) == (1, 2)
    assert joerg_json["names_seen"] == {"Jörg Müller": 2, "Jörg M.": 1}
    scores = [float(str(c["score"])) for c in data]
    assert scores == sorted(scores, reverse=True)


def test_filters_sort_and_pages(cli: Cli, book: Seeded, tenant: TenantHandle) -> None:
    assert [c["email"] for c in listed(cli, tenant.id, "--search", "müller")] == ["joerg@example.de"]
    assert [c["email"] for c in listed(cli, tenant.id, "--domain", "partner.example")] == [
        "ann@partner.example"
    ]
    assert [c["email"] for c in listed(cli, tenant.id, "--two-way")] == ["joerg@example.de"]
    by_name = [c["name"] for c in listed(cli, tenant.id, "--sort", "name")]
    assert by_name == sorted(by_name, key=lambda n: str(n).lower())

    first = json.loads(cli("contacts", "list", "-t", tenant.id, "--limit", "2", "--json").stdout)
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = listed(cli, tenant.id, "--limit", "2", "--cursor", first["next_cursor"])
    seen = [c["email"] for c in first["items"] + rest]
    assert len(seen) == 3 == len(set(seen))
    paged = cli("contacts", "list", "-t", tenant.id, "--limit", "1")
    assert "more: --cursor " in paged.stderr

    one_line_error(cli("contacts", "list", "-t", tenant.id, "--sort", "rank", ok=False), "invalid_input")
    one_line_error(
        cli("contacts", "list", "-t", tenant.id, "--domain", "not a domain", ok=False), "invalid_input"
    )
    one_line_error(cli("contacts", "list", "-t", "nobody", ok=False), "not_found")


def test_show_with_the_history(cli: Cli, book: Seeded, tenant: TenantHandle) -> None:
    joerg = book.ids["joerg@example.de"]
    shown = cli("contacts", "show", joerg, "-t", tenant.name).stdout
    assert "Jörg Müller" in shown and "Joerg@Example.de" in shown and "JOERG@example.de" in shown
    assert "two-way" in shown and "desk@hotel.example" in shown  # the mailbox that counted him
    assert "bulk" in shown  # his bulk message, left out, and why
    as_json = json.loads(cli("contacts", "show", joerg, "-t", tenant.name, "--json").stdout)
    assert as_json["id"] == joerg and as_json["email"] == "joerg@example.de"
    one_line_error(
        cli("contacts", "show", "ct_00000000000000000000000000", "-t", tenant.name, ok=False),
        "contact_not_found",
    )


@pytest.fixture
async def other(services: Services) -> TenantHandle:
    return await create_tenant(services)


@pytest.fixture
async def owned(services: Services, tenant: TenantHandle) -> Seeded:
    """The same mail, seen by a mailbox of owner ``user-7``: a book of its own."""
    return await seed(services, tenant.id, owner="user-7", email="user7@hotel.example")


def test_another_tenant_and_another_owner_see_nothing(
    cli: Cli, book: Seeded, owned: Seeded, other: TenantHandle, tenant: TenantHandle
) -> None:
    joerg = book.ids["joerg@example.de"]
    assert listed(cli, other.id) == []
    one_line_error(cli("contacts", "show", joerg, "-t", other.id, ok=False), "contact_not_found")
    one_line_error(cli("contacts", "delete", joerg, "-t", other.id, ok=False), "contact_not_found")

    everyone = listed(cli, tenant.id)
    assert len(everyone) == 6  # both books of the tenant
    mine = listed(cli, tenant.id, "--owner", "user-7")
    assert {c["id"] for c in mine} == set(owned.ids.values()) and {c["owner"] for c in mine} == {"user-7"}
    unowned = listed(cli, tenant.id, "--owner", "")
    assert {c["id"] for c in unowned} == set(book.ids.values())
    one_line_error(
        cli("contacts", "show", joerg, "-t", tenant.id, "--owner", "user-7", ok=False), "contact_not_found"
    )
    one_line_error(
        cli("contacts", "merge", joerg, owned.ids["joerg@example.de"], "-t", tenant.id, ok=False),
        "contact_book_mismatch",
    )


def test_export_csv_and_vcard(cli: Cli, book: Seeded, tenant: TenantHandle, tmp_path: Path) -> None:
    printed = cli("contacts", "export", "-t", tenant.id, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(printed)))
    assert [r["primary_email"] for r in rows][0] == "joerg@example.de"
    assert {r["primary_email"] for r in rows} == {
        "joerg@example.de",
        "ann@partner.example",
        "mallory@evil.example",
    }
    assert next(r for r in rows if r["primary_email"] == "joerg@example.de")["display_name"] == "Jörg Müller"

    target = tmp_path / "out" / "contacts.vcf"
    target.parent.mkdir()
    done = cli(
        "contacts",
        "export",
        "-t",
        tenant.id,
        "--format",
        "vcard",
        "--domain",
        "example.de",
        "-o",
        str(target),
    )
    assert done.stdout.startswith("exported ") and str(target) in done.stdout
    cards = list(vobject.readComponents(target.read_text(encoding="utf-8")))
    assert [card.fn.value for card in cards] == ["Jörg Müller"]
    assert cards[0].email.value == "joerg@example.de"
    assert list(target.parent.iterdir()) == [target]  # no partial file left behind

    failed = cli("contacts", "export", "-t", tenant.id, "--format", "xls", ok=False)
    one_line_error(failed, "invalid_input")
    nowhere = str(tmp_path / "missing" / "contacts.csv")
    one_line_error(cli("contacts", "export", "-t", tenant.id, "-o", nowhere, ok=False), "invalid_input")
    refused = cli("contacts", "export", "-t", tenant.id, "--domain", "no domain", "-o", str(target), ok=False)
    one_line_error(refused, "invalid_input")
    assert list(target.parent.iterdir()) == [target]  # the earlier export is still there, whole


def test_delete_and_merge(cli: Cli, book: Seeded, tenant: TenantHandle) -> None:
    ann, mallory, joerg = (
        book.ids[k] for k in ("ann@partner.example", "mallory@evil.example", "joerg@example.de")
    )
    assert cli("contacts", "delete", mallory, "-t", tenant.id).stdout.strip() == f"deleted {mallory}"
    assert mallory not in {c["id"] for c in listed(cli, tenant.id)}
    one_line_error(cli("contacts", "show", mallory, "-t", tenant.id, ok=False), "contact_not_found")

    merged = cli("contacts", "merge", joerg, ann, "-t", tenant.id).stdout.strip()
    assert merged == f"merged 1 contact into {joerg} (joerg@example.de)"
    data = listed(cli, tenant.id)
    assert [c["id"] for c in data] == [joerg]
    assert set(data[0]["emails"]) == {"joerg@example.de", "ann@partner.example"}  # type: ignore[arg-type]
    assert data[0]["received_from"] == 3


@dataclass
class Harvestable:
    box: MailBox
    off: str  # a mailbox of the tenant that does not harvest
    wrong_password: str  # one that harvests, with a password the server refuses


def deliver(box: MailBox, subject: str, sender: str, *, to: str | None = None, folder: str = "INBOX") -> None:
    """A message to the mailbox's own address (or from it, in Sent, to ``to``)."""
    raw = letter(subject, sender=sender).replace(b"To: box@example.test", f"To: {to or box.user}".encode())
    box.deliver(raw, folder)


async def switch_on(services: Services, tenant_id: str, mailbox_id: str) -> None:
    patch = SettingsPatch(contacts=ContactsPatch())
    await services.mailboxes.update(tenant_id, mailbox_id, MailboxUpdate(settings=patch))


@pytest.fixture
async def harvestable(services: Services, tenant: TenantHandle, dovecot: Dovecot) -> Harvestable:
    box = await new_box(services, tenant, dovecot)
    deliver(box, "Anfrage", "=?utf-8?q?J=C3=B6rg?= <Joerg@Example.test>")
    deliver(box, "Noch eine", "Jörg <joerg@example.test>")
    deliver(box, "Angebot", "Shop <noreply@shop.example>")
    deliver(box, "Antwort", f"Desk <{box.user}>", to="Ann <ann@example.test>", folder="Sent")
    await switch_on(services, tenant.id, box.mailbox_id)
    off = await new_box(services, tenant, dovecot)
    user, _ = dovecot.dyn_user(f"w{uuid.uuid4().hex[:10]}")
    wrong = await add_mailbox(services, tenant.id, dovecot, user, "not-the-password")
    await switch_on(services, tenant.id, wrong)
    return Harvestable(box, off.mailbox_id, wrong)


def test_sync_harvests_a_dovecot_mailbox_now(
    cli: Cli, harvestable: Harvestable, tenant: TenantHandle, other: TenantHandle
) -> None:
    mailbox_id = harvestable.box.mailbox_id
    first = cli("contacts", "sync", mailbox_id, "-t", tenant.name).stdout.strip()
    assert re.fullmatch(
        rf"harvested {mailbox_id} \(full\): 4 messages read in 2 folders, 4 new; "
        r"contacts: 2 created, 0 updated; \d+\.\d s",
        first,
    ), first
    found = {c["email"]: c for c in listed(cli, tenant.id)}
    assert set(found) == {"joerg@example.test", "ann@example.test"}
    assert found["joerg@example.test"]["received_from"] == 2 and found["ann@example.test"]["sent_to"] == 1

    deliver(harvestable.box, "Neu", "Carl <carl@example.test>")
    again = json.loads(cli("contacts", "sync", mailbox_id, "-t", tenant.id, "--json").stdout)
    assert (again["messages"], again["created"], again["full"]) == (1, 1, False)
    full = json.loads(cli("contacts", "sync", mailbox_id, "-t", tenant.id, "--full", "--json").stdout)
    assert (full["read"], full["messages"], full["created"], full["full"]) == (5, 0, 0, True)  # counted once
    assert full["seconds"] >= 0

    def refused(mailbox: str, tenant_id: str) -> Result:
        return cli("contacts", "sync", mailbox, "-t", tenant_id, ok=False)

    one_line_error(refused(harvestable.off, tenant.id), "contacts_not_enabled")
    one_line_error(refused(harvestable.wrong_password, tenant.id), "invalid_credentials")
    one_line_error(refused(mailbox_id, other.id), "not_found")


@pytest.fixture
async def busy(services: Services, harvestable: Harvestable) -> str:
    """The mailbox's harvest claimed by another process (a server's worker) for five minutes."""
    now = utc_now()
    async with services.database.transaction() as conn:
        claimed = await schedule.claim(
            conn, harvestable.box.mailbox_id, "another-process", now=now, until=now + timedelta(minutes=5)
        )
    assert claimed is not None
    return harvestable.box.mailbox_id


def test_sync_waits_for_another_process_then_says_so(cli: Cli, busy: str, tenant: TenantHandle) -> None:
    started = time.monotonic()
    waited = cli("contacts", "sync", busy, "-t", tenant.id, "--wait", "1", ok=False)
    assert time.monotonic() - started >= 1
    one_line_error(waited, "conflict")
    assert "being harvested by another process" in waited.stderr


def test_groups_list(cli: Cli, book: Seeded, tenant: TenantHandle) -> None:
    table = cli("contacts", "groups", "list", "-t", tenant.name).stdout
    rows = [line for line in table.splitlines() if "organisation" in line and "example" in line]
    assert {next(d for d in ("example.de", "partner.example", "evil.example") if d in r) for r in rows} == {
        "example.de",
        "partner.example",
        "evil.example",
    }
    found = json.loads(
        cli("contacts", "groups", "list", "-t", tenant.id, "--kind", "organisation", "--json").stdout
    )
    assert {(g["name"], g["members"]) for g in found["items"]} == {
        ("example.de", 1),
        ("partner.example", 1),
        ("evil.example", 1),
    }
    assert json.loads(
        cli("contacts", "groups", "list", "-t", tenant.id, "--kind", "custom", "--json").stdout
    ) == {
        "items": [],
        "next_cursor": None,
    }
    one_line_error(
        cli("contacts", "groups", "list", "-t", tenant.id, "--kind", "vip", ok=False), "invalid_input"
    )
