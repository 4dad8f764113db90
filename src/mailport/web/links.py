"""Connect links: a signed, expiring, single-use URL that runs the wizard for one tenant.

The host application calls ``POST /v1/connect-links`` with its tenant key and hands the URL to
its own end user, who connects a mailbox without ever seeing a key and is then sent back to
``return_url`` with ``?mailbox_id=…``. The link is a sealed token (:mod:`mailport.web.sealed`)
naming the tenant, the purpose, the address to pre-fill, the return URL and the owner (the host
application's user the mailbox is for, issue 19: the wizard creates it for that user, through
OAuth too); nothing is stored
when it is issued. Single use reuses the OAuth state store (:class:`~mailport.oauth.state.StateStore`,
one row per consumed nonce, primary key): the first visit consumes the link's nonce and turns it
into a wizard session; every later visit is refused with ``connect_link_used``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailport.errors import (
    ConnectLinkExpiredError,
    ConnectLinkInvalidError,
    ConnectLinkUsedError,
    InputError,
)
from mailport.oauth.signin import check_return_url
from mailport.oauth.state import StateStore
from mailport.web.sealed import Sealer

KIND = "connect-link"
DEFAULT_EXPIRES_IN = 3600
MAX_EXPIRES_IN = 7 * 24 * 3600
MIN_EXPIRES_IN = 60
PATH = "/link/"


@dataclass(frozen=True)
class ConnectLink:
    id: str
    tenant_id: str
    purpose: str | None
    email: str | None
    return_url: str | None
    expires_at: datetime
    connector: str | None = None  # imap | api | gmail_api | graph; None: the visitor chooses
    owner: str | None = None  # the user the mailbox is created for; None: the tenant


@dataclass(frozen=True)
class IssuedLink:
    link: ConnectLink
    url: str


class ConnectLinks:
    def __init__(self, sealer: Sealer, store: StateStore, *, public_url: str) -> None:
        self._sealer = sealer
        self._store = store
        self._public_url = public_url.rstrip("/")

    def issue(
        self,
        tenant_id: str,
        *,
        purpose: str | None = None,
        email: str | None = None,
        return_url: str | None = None,
        expires_in: int = DEFAULT_EXPIRES_IN,
        connector: str | None = None,
        owner: str | None = None,
    ) -> IssuedLink:
        if not MIN_EXPIRES_IN <= expires_in <= MAX_EXPIRES_IN:
            raise InputError(
                f"expires_in must be between {MIN_EXPIRES_IN} and {MAX_EXPIRES_IN} seconds",
                field="expires_in",
            )
        check_return_url(return_url)
        link_id = "cl_" + secrets.token_urlsafe(12)
        token = self._sealer.seal(
            KIND,
            {
                "i": link_id,
                "t": tenant_id,
                "p": purpose,
                "e": email,
                "r": return_url,
                "c": connector,
                "o": owner,
            },
            ttl_seconds=expires_in,
        )
        expires_at = self._sealer.expires_at(KIND, token)
        assert expires_at is not None
        link = ConnectLink(link_id, tenant_id, purpose, email, return_url, expires_at, connector, owner)
        return IssuedLink(link, f"{self._public_url}{PATH}{token}")

    def open(self, token: str) -> ConnectLink:
        """The link behind ``token`` (not consumed); invalid or expired links raise."""
        data = self._sealer.open(KIND, token)
        if data is None:
            expired = self._sealer.expires_at(KIND, token)
            if expired is not None:
                raise ConnectLinkExpiredError("this connect link has expired")
            raise ConnectLinkInvalidError("this connect link is not valid")
        try:
            return ConnectLink(
                id=str(data["i"]),
                tenant_id=str(data["t"]),
                purpose=data.get("p"),
                email=data.get("e"),
                return_url=data.get("r"),
                expires_at=self._sealer.expires_at(KIND, token) or self._sealer.now(),
                connector=data.get("c"),
                owner=data.get("o"),
            )
        except KeyError as exc:
            raise ConnectLinkInvalidError("this connect link is not valid") from exc

    async def consume(self, token: str) -> ConnectLink:
        """Open and use up the link; the second call raises :class:`ConnectLinkUsedError`."""
        link = self.open(token)
        # Remember the nonce a little longer than the link lives, so a late replay is still "used".
        keep_until = link.expires_at + timedelta(minutes=5)
        if not await self._store.consume(link.id, expires_at=keep_until):
            raise ConnectLinkUsedError("this connect link was already used")
        return link
