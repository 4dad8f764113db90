"""``mailport export``: the state as an accounts file without a secret; applying it changes nothing."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.integration.declare.conftest import Accounts, one_line_error
from tests.integration.declare.test_apply import HOOK, OTHER_HOOK, declaration, whsec


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_applying_an_export_changes_nothing(accounts: Accounts, fmt: str):
    password, hook_secret = "pw-" + whsec(), whsec()
    data = declaration(
        owner="user-7",
        enabled=False,
        settings={
            "from_name": "Support desk",
            "after_processing": "mark_read",
            "folders": ["INBOX", "role:sent"],
            "sending": {"aliases": ["help@example.com"], "rate_per_minute": 5},
            "contacts": {"policy": "sent_only", "backfill_days": 30},
        },
        password="env:PW",
    )
    tenant = data["tenants"][0]
    tenant["oauth_apps"].append({"provider": "google", "client_id": "public-client"})
    tenant["webhooks"].append(
        {
            "url": OTHER_HOOK,
            "secret": "env:HOOK_SECRET",
            "description": "all",
            "batch_size": 40,
            "enabled": False,
        }
    )
    env = {"PW": password, "HOOK_SECRET": hook_secret, "MS_SECRET": "ms-" + whsec()}
    accounts.apply(str(accounts.write(data)), **env)
    # a mailbox made another way (the mailboxes command) is exported as well
    accounts.cli(
        "mailboxes", "add", "other@example.com", "-t", "acme", "--imap-host", "127.0.0.1",
        "--password-env", "PW", PW=password,
    )  # fmt: skip
    rows = accounts.rows()

    exported = accounts.cli("export", "--format", fmt).stdout
    for secret in env.values():
        assert secret not in exported
    parsed = json.loads(exported) if fmt == "json" else yaml.safe_load(exported)
    acme = parsed["tenants"][0]
    assert [m["email"] for m in acme["mailboxes"]] == [
        "other@example.com",
        "sales@example.com",
        "support@example.com",
    ]
    support = acme["mailboxes"][2]
    assert support["password"] == "stored" and support["enabled"] is False and support["owner"] == "user-7"
    assert support["settings"]["contacts"]["policy"] == "sent_only"
    assert [w["secret"] for w in acme["webhooks"]] == ["stored", "stored"]
    assert {w["url"]: w.get("batch_size") for w in acme["webhooks"]} == {HOOK: None, OTHER_HOOK: 40}
    assert {a["provider"]: a.get("client_secret") for a in acme["oauth_apps"]} == {
        "google": None,
        "microsoft": "stored",
    }

    path = accounts.dir / f"export.{fmt}"
    path.write_text(exported)
    for args in ([], ["--prune"]):  # no variable set: `stored` needs none
        again = accounts.apply(str(path), *args).stdout.splitlines()
        assert again[-1] == "no changes" and not [line for line in again if line[:2] in ("+ ", "~ ", "- ")]
        assert [line.split(":")[0] for line in again[:-1]] == ["waiting for sign-in"]  # sales, still
    assert accounts.rows() == rows


@pytest.mark.slow
def test_export_of_one_tenant_to_a_file(accounts: Accounts):
    data = declaration()
    data["tenants"].append({"name": "globex", "webhooks": [{"url": HOOK, "secret": "env:HOOK_SECRET"}]})
    (accounts.dir / "secrets").mkdir()
    (accounts.dir / "secrets" / "support.pw").write_text("pw")
    accounts.apply(str(accounts.write(data)), HOOK_SECRET=whsec(), MS_SECRET="x")
    written = accounts.cli("export", "--tenant", "globex", "-o", "globex.json")
    assert "wrote globex.json" in written.stderr
    parsed = json.loads((accounts.dir / "globex.json").read_text())
    assert parsed == {
        "version": 1,
        "tenants": [{"name": "globex", "webhooks": [{"url": HOOK, "secret": "stored"}]}],
    }
    one_line_error(accounts.cli("export", "--tenant", "initech", ok=False), "not_found")
