"""``mailport export``: the service's tenants as an accounts file, without a secret.

Every secret field says ``stored`` (keep the secret mailport has), so the export is safe to
commit and ``mailport apply`` of it changes nothing. Fields at their defaults are left out.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from mailport.declare.model import AccountsFile, TenantSpec
from mailport.declare.state import Snapshot
from mailport.declare.views import spec_of_app, spec_of_jwt, spec_of_mailbox, spec_of_webhook


def export_file(snapshot: Snapshot) -> AccountsFile:
    tenants = [
        TenantSpec(
            name=name,
            jwt=spec_of_jwt(state.jwt) if state.jwt else None,
            oauth_apps=[spec_of_app(a) for a in sorted(state.apps, key=lambda a: a.provider)],
            webhooks=[spec_of_webhook(w) for w in sorted(state.webhooks, key=lambda w: w.url)],
            mailboxes=[spec_of_mailbox(m) for m in sorted(state.mailboxes, key=lambda m: m.email.lower())],
        )
        for name, state in sorted(snapshot.tenants.items())
    ]
    return AccountsFile(version=1, tenants=tenants)


def render(file: AccountsFile, *, fmt: str) -> str:
    data: dict[str, Any] = file.model_dump(mode="json", exclude_defaults=True)
    data = {"version": 1, **data}  # a default, yet the one field every file states
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
