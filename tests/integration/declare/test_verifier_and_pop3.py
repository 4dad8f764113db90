"""A tenant's JWT verifier and POP3 mailboxes in the accounts file."""

from __future__ import annotations

import secrets

import pytest

from tests.integration.declare.conftest import Accounts, one_line_error


def with_verifier_and_pop3(**jwt: object) -> dict[str, object]:
    return {
        "version": 1,
        "tenants": [
            {
                "name": "crm",
                "jwt": {
                    "kind": "hs256",
                    "secret": "env:CRM_JWT_SECRET",
                    "issuer": "https://crm.example.com",
                    **jwt,
                },
                "mailboxes": [
                    {
                        "email": "inbound@example.com",
                        "connector": "pop3",
                        "auth": "password",
                        "password": "env:POP_PW",
                        "pop3": {"host": "127.0.0.1", "port": 995, "security": "ssl"},
                        "settings": {"after_processing": "delete"},
                    }
                ],
            }
        ],
    }


@pytest.mark.slow
def test_a_verifier_and_a_pop3_mailbox_apply_once_and_export(accounts: Accounts):
    env = {"CRM_JWT_SECRET": secrets.token_urlsafe(40), "POP_PW": "pop-secret"}
    accounts.cli.env.update(env)
    path = accounts.write(with_verifier_and_pop3())
    assert accounts.apply(str(path)).stdout.splitlines() == [
        "+ tenant crm",
        "+ jwt hs256 (tenant crm)",
        "+ mailbox inbound@example.com (tenant crm)",
        "applied: 3 created, 0 changed, 0 deleted",
    ]
    crm = accounts.state().tenants["crm"]
    assert crm.jwt is not None and crm.jwt.secret is not None
    assert crm.jwt.secret.reveal() == env["CRM_JWT_SECRET"] and crm.jwt.issuer == "https://crm.example.com"
    [inbound] = crm.mailboxes
    assert inbound.connector == "pop3" and inbound.imap is None and inbound.pop3 is not None
    assert (inbound.pop3.host, inbound.pop3.port, inbound.settings.after_processing) == (
        "127.0.0.1",
        995,
        "delete",
    )
    rows, verifier = accounts.rows(), crm.jwt

    assert accounts.apply(str(path)).stdout.splitlines() == ["no changes"]
    assert accounts.rows() == rows and accounts.state().tenants["crm"].jwt == verifier

    env["CRM_JWT_SECRET"] = accounts.cli.env["CRM_JWT_SECRET"] = secrets.token_urlsafe(40)  # rotated
    changed = accounts.apply(str(accounts.write(with_verifier_and_pop3(audience="mailport")))).stdout
    assert changed.splitlines()[0] == '~ jwt hs256 (tenant crm): audience: null → "mailport"; secret: changed'
    crm = accounts.state().tenants["crm"]
    assert (
        crm.jwt is not None
        and crm.jwt.secret is not None
        and crm.jwt.secret.reveal() == env["CRM_JWT_SECRET"]
    )

    exported = accounts.cli("export").stdout
    assert env["CRM_JWT_SECRET"] not in exported and "pop-secret" not in exported
    export = accounts.dir / "export.yaml"
    export.write_text(exported)
    assert accounts.apply(str(export), "--prune").stdout.splitlines() == ["no changes"]

    no_verifier = with_verifier_and_pop3()
    del no_verifier["tenants"][0]["jwt"]  # type: ignore[index]
    path = accounts.write(no_verifier)
    assert accounts.apply(str(path)).stdout.splitlines() == ["no changes"]  # kept without --prune
    assert accounts.apply(str(path), "--prune").stdout.splitlines()[0] == "- jwt hs256 (tenant crm)"
    assert accounts.state().tenants["crm"].jwt is None


@pytest.mark.slow
def test_a_short_verifier_secret_and_a_pop3_folder_are_refused_before_any_write(accounts: Accounts):
    short = accounts.apply(
        str(accounts.write(with_verifier_and_pop3())), ok=False, CRM_JWT_SECRET="short", POP_PW="x"
    )
    one_line_error(short, "declaration_invalid")
    assert "tenants[0].jwt" in short.stderr and "at least 32 bytes" in short.stderr
    data = with_verifier_and_pop3()
    data["tenants"][0]["mailboxes"][0]["settings"] = {"folders": ["INBOX", "Archive"]}  # type: ignore[index]
    folders = accounts.apply(
        str(accounts.write(data)), ok=False, CRM_JWT_SECRET=secrets.token_urlsafe(40), POP_PW="x"
    )
    one_line_error(folders, "declaration_invalid")
    assert "tenants[0].mailboxes[0].settings.folders" in folders.stderr
    assert accounts.rows() == {}
