"""``mailport apply``: idempotent, a dry run writes nothing, prune, secrets only by reference."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
from typing import Any

import pytest

from mailport.crypto import Secret
from mailport.declare.links import waits_for_sign_in
from mailport.mailboxes.models import AuthMethod, OAuthGrant
from tests.integration.declare.conftest import Accounts, one_line_error

HOOK = "http://127.0.0.1:9/hooks/mail"
OTHER_HOOK = "http://127.0.0.1:9/hooks/other"


def whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def declaration(**mailbox: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "tenants": [
            {
                "name": "acme",
                "oauth_apps": [
                    {"provider": "microsoft", "client_id": "app-1", "client_secret": "env:MS_SECRET"}
                ],
                "webhooks": [{"url": HOOK, "events": ["message.received"], "secret": "env:HOOK_SECRET"}],
                "mailboxes": [
                    {
                        "email": "support@example.com",
                        "auth": "password",
                        "password": "file:secrets/support.pw",
                        "label": "Support",
                        "purpose": "support",
                        "imap": {"host": "127.0.0.1", "port": 993, "security": "ssl"},
                        "smtp": {"host": "127.0.0.1", "port": 587, "security": "starttls"},
                        "settings": {"check_interval": 120, "folders": ["INBOX", "role:sent"]},
                        **mailbox,
                    },
                    {
                        "email": "sales@example.com",
                        "auth": "oauth2",
                        "provider": "microsoft",
                        "connector": "graph",
                        "owner": "user-42",
                    },
                ],
            }
        ],
    }


@pytest.fixture
def env(accounts: Accounts) -> dict[str, str]:
    (accounts.dir / "secrets").mkdir()
    (accounts.dir / "secrets" / "support.pw").write_text("s3cret-from-file\n")
    values = {"MS_SECRET": "ms-client-secret", "HOOK_SECRET": whsec()}
    accounts.cli.env.update(values)
    return values


@pytest.mark.slow
def test_apply_twice_changes_nothing_the_second_time(accounts: Accounts, env: dict[str, str]):
    path = accounts.write(declaration())
    first = accounts.apply(str(path))
    assert first.stdout.splitlines()[:5] == [
        "+ tenant acme",
        "+ oauth_app microsoft (tenant acme)",
        f"+ webhook {HOOK} (tenant acme)",
        "+ mailbox support@example.com (tenant acme)",
        "+ mailbox sales@example.com (tenant acme)",
    ]
    assert first.stdout.splitlines()[-1] == "applied: 5 created, 0 changed, 0 deleted"
    rows = accounts.rows()
    state = accounts.state().tenants["acme"]
    support = next(m for m in state.mailboxes if m.email == "support@example.com")
    assert support.password is not None and support.password.reveal() == "s3cret-from-file"
    assert [w.spec for w in support.settings.watched] == ["INBOX", "role:sent"]
    assert state.webhooks[0].secret.reveal() == env["HOOK_SECRET"]
    assert state.app_secrets["microsoft"] is not None
    assert state.app_secrets["microsoft"].reveal() == "ms-client-secret"

    second = accounts.apply(str(path))
    assert second.stdout.splitlines()[-1] == "no changes"
    assert not [line for line in second.stdout.splitlines() if line[:2] in ("+ ", "~ ", "- ")]
    assert accounts.rows() == rows  # not one row written (updated_at included)


@pytest.mark.slow
def test_the_oauth_mailbox_waits_for_sign_in_with_a_connect_link(accounts: Accounts, env: dict[str, str]):
    done = json.loads(accounts.apply(str(accounts.write(declaration())), "--json").stdout)
    [link] = done["connect_links"]
    assert link["email"] == "sales@example.com" and link["tenant"] == "acme"
    assert link["url"].startswith("https://mail.example.test/link/")
    sales = next(m for m in accounts.state().tenants["acme"].mailboxes if m.email == "sales@example.com")
    assert sales.auth_method is AuthMethod.OAUTH2 and sales.connector == "graph" and waits_for_sign_in(sales)
    assert link["mailbox_id"] == sales.id

    async def opened(services: Any) -> Any:  # the link the web UI would open: this tenant, this address
        from mailport.web.state import WebState

        return WebState.build(services).links.open(link["url"].rsplit("/", 1)[1])

    found = accounts.run(opened)
    assert (found.tenant_id, found.email, found.connector) == (sales.tenant_id, "sales@example.com", "graph")
    assert sales.owner == found.owner == "user-42"  # the sign-in fills the owner's mailbox


@pytest.mark.slow
def test_a_dry_run_prints_the_diff_and_writes_nothing(accounts: Accounts, env: dict[str, str]):
    path = accounts.write(declaration())
    planned = accounts.apply(str(path), "--dry-run")
    assert (
        planned.stdout.splitlines()[-1] == "dry run: 5 to create, 0 to change, 0 to delete (nothing written)"
    )
    assert accounts.rows() == {}

    accounts.apply(str(path))
    rows = accounts.rows()
    changed = declaration(label="Helpdesk", settings={"check_interval": 300})
    changed["tenants"][0]["webhooks"][0]["events"] = ["message.received", "mailbox.error"]
    changed["tenants"][0]["webhooks"][0]["batch_size"] = 25
    env["HOOK_SECRET"] = accounts.cli.env["HOOK_SECRET"] = whsec()  # rotated
    diff = accounts.apply(str(accounts.write(changed)), "--dry-run")
    assert diff.stdout.splitlines() == [
        f'~ webhook {HOOK} (tenant acme): events: ["message.received"] → ["message.received", '
        '"mailbox.error"]; batch_size: 1 → 25; secret: changed',
        '~ mailbox support@example.com (tenant acme): label: "Support" → "Helpdesk"; '
        'settings.check_interval: 120 → 300; settings.folders: ["INBOX", "role:sent"] → ["INBOX"]',
        "dry run: 0 to create, 2 to change, 0 to delete (nothing written)",
    ]
    assert env["HOOK_SECRET"] not in diff.stdout + diff.stderr
    assert accounts.rows() == rows

    applied = accounts.apply(str(accounts.write(changed)))
    assert applied.stdout.splitlines()[-1] == "applied: 0 created, 2 changed, 0 deleted"
    state = accounts.state().tenants["acme"]
    assert state.webhooks[0].secret.reveal() == env["HOOK_SECRET"]
    assert state.webhooks[0].events == ("message.received", "mailbox.error")
    assert state.webhooks[0].batch_size == 25
    assert accounts.apply(str(accounts.write(changed))).stdout.splitlines()[-1] == "no changes"


@pytest.mark.slow
def test_a_changed_password_is_one_change(accounts: Accounts, env: dict[str, str]):
    path = accounts.write(declaration())
    accounts.apply(str(path))
    (accounts.dir / "secrets" / "support.pw").write_text("rotated")
    out = accounts.apply(str(path)).stdout
    assert "~ mailbox support@example.com (tenant acme): password: changed" in out.splitlines()
    assert "rotated" not in out
    support = next(m for m in accounts.state().tenants["acme"].mailboxes if m.email == "support@example.com")
    assert support.password is not None and support.password.reveal() == "rotated"


@pytest.mark.slow
def test_prune_removes_what_the_file_no_longer_lists(accounts: Accounts, env: dict[str, str]):
    full = declaration()
    full["tenants"][0]["webhooks"].append({"url": OTHER_HOOK, "secret": "env:HOOK_SECRET"})
    full["tenants"].append({"name": "globex"})
    accounts.apply(str(accounts.write(full)))
    kept = declaration()
    del kept["tenants"][0]["mailboxes"][1]
    kept["tenants"][0]["oauth_apps"] = []
    path = accounts.write(kept)

    assert accounts.apply(str(path)).stdout.splitlines() == ["no changes"]  # without --prune: kept
    pruned = accounts.apply(str(path), "--prune", "--dry-run").stdout.splitlines()
    assert pruned == [
        "- mailbox sales@example.com (tenant acme)",
        f"- webhook {OTHER_HOOK} (tenant acme)",
        "- oauth_app microsoft (tenant acme)",
        "dry run: 0 to create, 0 to change, 3 to delete (nothing written)",
    ]
    accounts.apply(str(path), "--prune")
    state = accounts.state()
    assert set(state.tenants) == {"acme", "globex"}  # a tenant only goes with --prune-tenants
    acme = state.tenants["acme"]
    assert [m.email for m in acme.mailboxes] == ["support@example.com"]
    assert [w.url for w in acme.webhooks] == [HOOK] and acme.apps == []

    one_line_error(accounts.apply(str(path), "--prune-tenants", ok=False), "invalid_input")
    gone = accounts.apply(str(path), "--prune", "--prune-tenants").stdout.splitlines()
    assert gone[0] == "- tenant globex: with 0 mailboxes, 0 webhooks, 0 OAuth apps"
    assert set(accounts.state().tenants) == {"acme"}


@pytest.mark.slow
@pytest.mark.parametrize("field", ["password", "webhook secret", "client_secret"])
def test_an_inline_secret_is_refused_and_not_repeated(accounts: Accounts, env: dict[str, str], field: str):
    inline = "hunter2-" + secrets.token_hex(8)
    data = declaration()
    tenant = data["tenants"][0]
    if field == "password":
        tenant["mailboxes"][0]["password"] = inline
    elif field == "webhook secret":
        tenant["webhooks"][0]["secret"] = inline
    else:
        tenant["oauth_apps"][0]["client_secret"] = inline
    refused = accounts.apply(str(accounts.write(data)), ok=False)
    one_line_error(refused, "inline_secret")
    assert "accounts.yaml:" in refused.stderr and "tenants[0]." in refused.stderr
    assert inline not in refused.stdout + refused.stderr
    assert accounts.rows() == {}  # refused before the first write


@pytest.mark.slow
def test_references_name_a_variable_or_a_file_next_to_the_accounts_file(
    accounts: Accounts, env: dict[str, str]
):
    data = declaration()
    data["tenants"][0]["oauth_apps"][0]["client_secret"] = "env:NOT_SET_ANYWHERE"
    refused = accounts.apply(str(accounts.write(data)), ok=False)
    one_line_error(refused, "secret_reference_unresolved")
    assert "tenants[0].oauth_apps[0].client_secret" in refused.stderr and "NOT_SET_ANYWHERE" in refused.stderr

    missing = accounts.apply(str(accounts.write(declaration(password="file:nowhere.pw"))), ok=False)
    one_line_error(missing, "secret_reference_unresolved")
    assert (
        "tenants[0].mailboxes[0].password" in missing.stderr
        and str(accounts.dir / "nowhere.pw") in missing.stderr
    )

    stored = accounts.apply(str(accounts.write(declaration(password="stored"))), ok=False)
    one_line_error(stored, "secret_reference_unresolved")  # nothing is stored for a new mailbox
    assert accounts.rows() == {}

    elsewhere = accounts.dir / "elsewhere"
    elsewhere.mkdir()
    os.rename(accounts.dir / "secrets", elsewhere / "secrets")
    accounts.apply(str(accounts.write(declaration(), "elsewhere/accounts.yaml")))  # relative to the file
    support = next(m for m in accounts.state().tenants["acme"].mailboxes if m.email == "support@example.com")
    assert support.password is not None and support.password.reveal() == "s3cret-from-file"


@pytest.mark.slow
def test_a_bad_file_is_one_line_with_its_line_number(accounts: Accounts, env: dict[str, str]):
    path = accounts.dir / "accounts.yaml"
    lines = ["version: 1", "tenants:", "  - name: acme", "    mailboxes:", "      - email: a@example.com"]
    path.write_text("\n".join([*lines, "        auth: pasword", ""]))
    refused = accounts.apply(str(path), ok=False)
    one_line_error(refused, "declaration_invalid")
    assert f"{path}:6: tenants[0].mailboxes[0].auth:" in refused.stderr
    hook = ["    webhooks:", "      - url: https://app.example.com/h", "        secret: env:HOOK_SECRET"]
    path.write_text("\n".join([*lines[:3], *hook, "        batch_size: 0", ""]))
    refused = accounts.apply(str(path), ok=False)
    one_line_error(refused, "declaration_invalid")
    assert f"{path}:7: tenants[0].webhooks[0].batch_size:" in refused.stderr
    path.write_text("version: 1\ntenants: [\n")
    one_line_error(accounts.apply(str(path), ok=False), "declaration_invalid")
    assert accounts.rows() == {}


@pytest.mark.slow
def test_a_connector_cannot_change_in_place(accounts: Accounts, env: dict[str, str]):
    accounts.apply(str(accounts.write(declaration())))
    rows = accounts.rows()
    data = declaration()
    data["tenants"][0]["mailboxes"][1]["connector"] = "imap"
    refused = accounts.apply(str(accounts.write(data)), ok=False)
    one_line_error(refused, "declaration_invalid")
    assert "tenants[0].mailboxes[1].connector" in refused.stderr
    assert accounts.rows() == rows


@pytest.mark.slow
def test_a_host_the_guard_refuses_is_refused_before_the_first_write(accounts: Accounts, env: dict[str, str]):
    path = accounts.write(declaration())
    refused = accounts.apply(str(path), ok=False, MAILPORT_ALLOW_PRIVATE_HOSTS="false")
    one_line_error(refused, "host_not_allowed")
    assert accounts.rows() == {}  # not even the tenant, which comes first in the plan


@pytest.mark.slow
def test_an_imap_oauth_mailbox_gets_the_providers_servers_and_keeps_those_of_its_sign_in(accounts: Accounts):
    data = {
        "version": 1,
        "tenants": [
            {
                "name": "acme",
                "mailboxes": [{"email": "frank@example.com", "auth": "oauth2", "provider": "microsoft"}],
            }
        ],
    }
    path = accounts.write(data)
    first = accounts.apply(str(path)).stdout.splitlines()
    assert first[1] == "+ mailbox frank@example.com (tenant acme)"
    assert first[2].startswith(
        "waiting for sign-in: frank@example.com (tenant acme): https://mail.example.test/link/"
    )
    [frank] = accounts.state().tenants["acme"].mailboxes
    assert frank.imap is not None and frank.imap.host == "outlook.office365.com" and waits_for_sign_in(frank)

    async def signed_in(services: Any) -> None:  # what the sign-in stores: tokens, the servers as its account
        grant = OAuthGrant(
            "microsoft", access_token=Secret("at"), refresh_token=Secret("rt"), scopes=("imap",)
        )
        servers = {
            name: dataclasses.replace(server, username="frank@contoso.onmicrosoft.com")
            for name, server in (("imap", frank.imap), ("smtp", frank.smtp))
        }
        await services.mailboxes.store_grant(frank.tenant_id, frank.id, grant, **servers)

    accounts.run(signed_in)
    rows = accounts.rows()
    assert accounts.apply(str(path)).stdout.splitlines() == ["no changes"]  # no link, no server change
    assert accounts.rows() == rows
