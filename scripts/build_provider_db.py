#!/usr/bin/env python3
"""Regenerate ``src/mailport/detect/data/ispdb.json`` from Thunderbird's ISPDB and provider-db.

Usage::

    python scripts/build_provider_db.py ISPDB_DIR PROVIDER_DB_DIR [--out src/mailport/detect/data]

``ISPDB_DIR`` holds ISPDB's ``*.xml`` files (github.com/thunderbird/autoconfig, ``ispdb/``),
``PROVIDER_DB_DIR`` provider-db's ``*.md`` files (github.com/chatmail/provider-db,
``_providers/``); each directory has a ``SOURCE`` file naming the upstream commit and a
``LICENSE``. Both are MPL-2.0, so the generated file stays a separate file with the licence
text and a NOTICE naming the commits beside it. Our own corrections live in
``mailport/detect/overrides.py`` (Apache-2.0) and are applied at load time, not here.

The ISPDB XML is read with mailport's own autoconfig parser, so the data and the run-time
parser cannot disagree. ISPDB's POP3 servers are kept (detection offers them when a domain
has no IMAP); provider-db lists IMAP and SMTP servers only.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mailport.detect.autoconfig import AutoconfigParseError, parse
from mailport.detect.model import EMAIL_ADDRESS, EMAIL_LOCALPART, Hint

OAUTH_ISSUERS = {"accounts.google.com": "google", "login.microsoftonline.com": "microsoft"}
_SOCKETS = {"SSL": "ssl", "STARTTLS": "starttls", "PLAIN": "none"}
# provider-db's own documentation example, not a provider.
SKIP_PROVIDER_DB = {"example-com"}
_USERNAMES = {"EMAIL": EMAIL_ADDRESS, "EMAILLOCALPART": EMAIL_LOCALPART}


def hint_code(text: str) -> str:
    """Classify a provider-db hint so applications can react to it without reading prose."""
    lowered = text.lower()
    if re.search(r"(does not|doesn't) (offer|support|provide)\b.{0,30}\bimap", lowered):
        return "imap_not_offered"
    if re.search(r"app[- ]?(specific )?password|application password|per-app-password", lowered):
        return "app_password_required"
    if re.search(
        r"(enable|turn on|activate|allow)\b.{0,40}\b(imap|pop)|imap\b.{0,30}\b(enable|turn on)", lowered
    ):
        return "enable_imap"
    return "provider_note"


def read_provider_db(directory: Path) -> list[dict[str, Any]]:
    entries = []
    for path in sorted(directory.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.S)
        if not match:
            continue
        meta = yaml.safe_load(match.group(1)) or {}
        slug = path.stem.replace(".", "-")
        url = f"https://providers.delta.chat/{slug}/"
        hints = []
        for key in ("before_login_hint", "after_login_hint"):
            value = meta.get(key)
            if value:
                clean = " ".join(str(value).split())
                hints.append(Hint(hint_code(clean), clean, url))
        servers: dict[str, list[dict[str, Any]]] = {"imap": [], "smtp": []}
        for server in meta.get("server") or []:
            kind = server.get("type")
            security = _SOCKETS.get(str(server.get("socket", "")).upper())
            if kind not in servers or security is None:
                continue
            pattern = str(server.get("username_pattern", "EMAIL")).upper()
            servers[kind].append(
                {
                    "host": str(server["hostname"]).lower(),
                    "port": int(server["port"]),
                    "security": security,
                    "username": _USERNAMES.get(pattern, EMAIL_ADDRESS),
                    "auth": ["password"],
                }
            )
        entries.append(
            {
                "slug": slug,
                "name": str(meta.get("name", path.stem)),
                "status": str(meta.get("status", "")),
                "domains": [str(d).strip().lower() for d in meta.get("domains") or [] if str(d).strip()],
                "hints": hints,
                **servers,
            }
        )
    return entries


def auth_methods(servers: list[dict[str, Any]], hints: list[Hint]) -> list[str]:
    methods: list[str] = []
    for server in servers:
        for item in server["auth"]:
            if item not in methods:
                methods.append(item)
    if any(h.code == "app_password_required" for h in hints):
        methods = [m for m in methods if m != "password"] + ["app_password"]
    return methods


def build(ispdb: Path, provider_db: Path) -> dict[str, Any]:
    providers: list[dict[str, Any]] = []
    by_domain: dict[str, dict[str, Any]] = {}
    for path in sorted(ispdb.glob("*.xml")):
        try:
            doc = parse(path.read_bytes())
        except AutoconfigParseError as exc:
            print(f"skipping {path.name}: {exc}", file=sys.stderr)
            continue
        provider_id = path.stem  # unique, unlike <emailProvider id> (zoho.com.au says "zoho.com")
        entry: dict[str, Any] = {
            "id": provider_id,
            "name": doc.display_name or path.stem,
            "domains": list(dict.fromkeys(doc.domains or (path.stem,))),
            "imap": [s.to_json() for s in doc.imap],
            "smtp": [s.to_json() for s in doc.smtp],
            "pop3": [s.to_json() for s in doc.pop3],
            "oauth_provider": OAUTH_ISSUERS.get(doc.oauth_issuer or ""),
            "hints": [h for h in doc.hints],
            "origin": "ispdb",
        }
        providers.append(entry)
        for domain in entry["domains"]:
            by_domain.setdefault(domain, entry)
    for item in read_provider_db(provider_db):
        targets = {id(by_domain[d]): by_domain[d] for d in item["domains"] if d in by_domain}
        if targets:
            for target in targets.values():
                known = {h.code for h in target["hints"]}
                target["hints"].extend(h for h in item["hints"] if h.code not in known)
            continue
        if not item["domains"] or item["slug"] in SKIP_PROVIDER_DB:
            continue
        entry = {
            "id": item["slug"],
            "name": item["name"],
            "domains": item["domains"],
            "imap": item["imap"],
            "smtp": item["smtp"],
            "oauth_provider": None,
            "hints": item["hints"],
            "origin": "provider-db",
        }
        providers.append(entry)
        for domain in entry["domains"]:
            by_domain.setdefault(domain, entry)
    for entry in providers:
        incoming = entry["imap"] or entry.get("pop3", [])  # POP3's count only without IMAP
        entry["auth_methods"] = auth_methods(incoming + entry["smtp"], entry["hints"])
        entry["hints"] = [h.to_dict() for h in entry["hints"]]
    return {
        "format": 1,
        "license": "MPL-2.0",
        "sources": [
            (ispdb / "SOURCE").read_text(encoding="utf-8").strip(),
            (provider_db / "SOURCE").read_text(encoding="utf-8").strip(),
        ],
        "providers": providers,
    }


NOTICE = """\
This directory's ispdb.json is generated by scripts/build_provider_db.py from two
third-party databases, both under the Mozilla Public License 2.0 (LICENSE-MPL-2.0 here):

{sources}

The source files are available from those repositories at those commits. ispdb.json is a
mechanical transformation of them (IMAP/POP3/SMTP servers, domains, hints); it is distributed
under MPL-2.0 as a separate file. The rest of mailport is Apache-2.0; mailport's own
corrections are in src/mailport/detect/overrides.py (Apache-2.0), not in this file.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ispdb", type=Path)
    parser.add_argument("provider_db", type=Path)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "src/mailport/detect/data"
    )
    args = parser.parse_args(argv)
    data = build(args.ispdb, args.provider_db)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ispdb.json").write_text(
        json.dumps(data, indent=1, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8"
    )
    shutil.copyfile(args.ispdb / "LICENSE", args.out / "LICENSE-MPL-2.0")
    (args.out / "NOTICE").write_text(
        NOTICE.format(sources="\n".join(f"  * {s}" for s in data["sources"])), encoding="utf-8"
    )
    domains = sum(len(p["domains"]) for p in data["providers"])
    print(f"wrote {len(data['providers'])} providers, {domains} domains to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
