"""scripts/build_provider_db.py on real ISPDB and provider-db samples."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

DATA = Path(__file__).parent / "data"
SCRIPT = Path(__file__).resolve().parents[3] / "scripts/build_provider_db.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_provider_db", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_provider_db"] = module
    spec.loader.exec_module(module)
    return module


def test_build_writes_data_licence_and_notice(tmp_path: Path) -> None:
    script = load_script()
    assert script.main([str(DATA / "ispdb"), str(DATA / "provider-db"), "--out", str(tmp_path)]) == 0

    data = json.loads((tmp_path / "ispdb.json").read_text(encoding="utf-8"))
    providers = {p["id"]: p for p in data["providers"]}
    assert data["license"] == "MPL-2.0"
    assert "c6ad79659b5fc321d1593ec4c277815b83e5dec5" in data["sources"][0]
    assert (tmp_path / "LICENSE-MPL-2.0").read_text().startswith("Mozilla Public License")
    assert "ad097ee40579c884e7757de2d3bb0a51f481a32a" in (tmp_path / "NOTICE").read_text()

    # ISPDB entry + provider-db hint for the same domains, classified.
    aol = providers["aol.com"]
    assert aol["imap"][0]["host"] == "imap.aol.com"
    assert [h["code"] for h in aol["hints"]] == ["app_password_required"]
    assert aol["auth_methods"] == ["oauth2", "app_password"]
    # Gmail: ISPDB's <enable> plus provider-db's app-password hint; OAuth issuer mapped.
    gmail = providers["googlemail.com"]
    assert {h["code"] for h in gmail["hints"]} == {"enable_imap", "app_password_required"}
    assert gmail["oauth_provider"] == "google"
    # A provider-db provider ISPDB lacks, and one without IMAP.
    assert (
        providers["fastmail"]["origin"] == "provider-db"
        and "fastmail.com" in providers["fastmail"]["domains"]
    )
    assert (
        providers["hey-com"]["imap"] == [] and providers["hey-com"]["hints"][0]["code"] == "imap_not_offered"
    )
    # iCloud's local-part user name survives.
    assert providers["me.com"]["imap"][0]["username"] == "%EMAILLOCALPART%"


def test_hint_classification() -> None:
    script = load_script()
    assert (
        script.hint_code("You must create an app-specific password before login.") == "app_password_required"
    )
    assert (
        script.hint_code("To use Zoho Mail, you have to turn on IMAP in the Zoho Mail backend.")
        == "enable_imap"
    )
    assert script.hint_code("hey.com does not offer the standard IMAP e-mail protocol") == "imap_not_offered"
    assert script.hint_code("Gmail limits how many messages you can send per day.") == "provider_note"


def test_build_keeps_ispdb_pop3_servers(tmp_path: Path) -> None:
    script = load_script()
    assert script.main([str(DATA / "ispdb"), str(DATA / "provider-db"), "--out", str(tmp_path)]) == 0
    providers = {p["id"]: p for p in json.loads((tmp_path / "ispdb.json").read_text())["providers"]}
    assert [(s["host"], s["port"], s["security"]) for s in providers["web.de"]["pop3"]] == [
        ("pop3.web.de", 995, "ssl"),
        ("pop3.web.de", 110, "starttls"),
    ]
    assert providers["fastmail"].get("pop3", []) == []  # provider-db lists no POP3 servers
