"""The wizard's work in progress, carried from step to step in a sealed hidden field.

Between "email address" and "save" the wizard knows the address, the detected provider, the
servers and (for password accounts) the password. Nothing is stored until the person saves: the
draft travels as a sealed value (:mod:`mailport.web.sealed`) in each step's form, so the password
never reaches the browser in clear text, abandoned wizards leave nothing behind and the server
keeps no per-visitor state. A draft belongs to one tenant and expires after an hour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mailport.crypto import Secret
from mailport.servers import ServerSettings
from mailport.web.sealed import Sealer

# The wizard's name for a server it carries: the one server-settings type.
Server = ServerSettings

KIND = "wizard-draft"
_SERVERS = ("imap", "smtp", "pop3")  # the servers a draft carries (sealed as their JSON form)
TTL = 3600


@dataclass(frozen=True)
class Draft:
    tenant_id: str
    email: str
    provider_id: str | None = None
    provider_name: str | None = None
    oauth_provider: str | None = None
    auth_method: str = "password"  # password | app_password | oauth2
    imap: ServerSettings | None = None  # a pin trusted on the test step travels with its server
    smtp: ServerSettings | None = None
    password: str | None = None  # only ever inside the sealed value
    mailbox_id: str | None = None  # set for OAuth (created at the callback) and for reconnects
    purpose: str | None = None
    tested: bool = False
    connector: str = "imap"  # imap | pop3 | gmail_api | graph: what reads the mailbox (its sign-in's scopes)
    hints: tuple[dict[str, str], ...] = field(default_factory=tuple)
    pop3: ServerSettings | None = None  # the incoming server when ``connector`` is pop3 (``imap`` None)

    def with_(self, **changes: Any) -> Draft:
        return replace(self, **changes)

    @property
    def secret(self) -> Secret | None:
        return Secret(self.password) if self.password else None

    def __repr__(self) -> str:  # the password must not reach a log line
        return f"Draft(email={self.email!r}, mailbox_id={self.mailbox_id!r}, auth={self.auth_method!r})"


def seal(sealer: Sealer, draft: Draft) -> str:
    data = asdict(replace(draft, imap=None, smtp=None, pop3=None))
    for name in _SERVERS:
        server = getattr(draft, name)
        data[name] = server.to_dict() if server else None
    return sealer.seal(KIND, data, ttl_seconds=TTL)


def open_draft(sealer: Sealer, token: str | None, tenant_id: str | None) -> Draft | None:
    data = sealer.open(KIND, token)
    if data is None or data.get("tenant_id") != tenant_id:
        return None
    try:
        imap, smtp, pop3 = (
            ServerSettings.from_dict(s) if (s := data.pop(n, None)) else None for n in _SERVERS
        )
        hints = tuple(data.pop("hints", ()) or ())
        return Draft(**data, imap=imap, smtp=smtp, pop3=pop3, hints=hints)
    except (TypeError, KeyError, ValueError):
        return None
