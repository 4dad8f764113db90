"""Who is using the web UI: the session cookie, sign-in and CSRF protection.

An operator signs in with a tenant API key or the admin key (the admin then picks the tenant to
act for); an end user arrives through a connect link and may only run the wizard for the link's
tenant. The session is a sealed value (:mod:`mailport.web.sealed`) in one cookie:
``HttpOnly``, ``SameSite=Lax`` (the browser still sends it when an OAuth provider redirects back)
and ``Secure`` when ``MAILPORT_PUBLIC_URL`` is https. The API key itself is never stored in it.

CSRF: every session carries a random token; every form posts it back (``csrf`` field) and every
htmx request sends it in ``X-CSRF-Token`` (set once on ``<body hx-headers>``). A POST without the
matching token is refused. Visitors who are not signed in get an anonymous session so that the
sign-in form is protected too.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from mailport.config import Settings
from mailport.errors import CSRFError
from mailport.web.sealed import Sealer

COOKIE = "mailport_session"
KIND = "web-session"
OPERATOR_TTL = 12 * 3600
LINK_TTL = 2 * 3600
ANON_TTL = 2 * 3600

Role = Literal["anon", "tenant", "admin", "link"]


@dataclass(frozen=True)
class LinkGrant:
    """What a connect link allows: one mailbox for its tenant, then back to ``return_url``."""

    link_id: str
    purpose: str | None = None
    email: str | None = None
    return_url: str | None = None
    connector: str | None = None  # imap | api | a connector key: preset; None: the visitor chooses
    owner: str | None = None  # the user the mailbox is created for (issue 19); None: the tenant


@dataclass(frozen=True)
class WebSession:
    role: Role
    csrf: str
    tenant_id: str | None = None
    tenant_name: str | None = None
    key_prefix: str | None = None
    link: LinkGrant | None = None
    done: bool = False  # a link session after its mailbox was saved
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def owner(self) -> str | None:
        """The user a connect link creates its mailbox for (issue 19); None: the tenant."""
        return self.link.owner if self.link is not None else None

    @property
    def signed_in(self) -> bool:
        return self.role in ("tenant", "admin", "link") and not self.done

    @property
    def is_operator(self) -> bool:
        return self.role in ("tenant", "admin")

    @property
    def ttl(self) -> int:
        return {"anon": ANON_TTL, "link": LINK_TTL}.get(self.role, OPERATOR_TTL)


def new_session(role: Role = "anon", **fields: Any) -> WebSession:
    return WebSession(role=role, csrf=secrets.token_urlsafe(24), **fields)


def secure_cookies(settings: Settings) -> bool:
    return settings.effective_public_url.startswith("https://")


class SessionCodec:
    def __init__(self, sealer: Sealer, settings: Settings) -> None:
        self._sealer = sealer
        self._secure = secure_cookies(settings)

    def read(self, request: Request) -> WebSession | None:
        data = self._sealer.open(KIND, request.cookies.get(COOKIE))
        if data is None:
            return None
        try:
            link = data.pop("link", None)
            return WebSession(**data, link=LinkGrant(**link) if link else None)
        except TypeError:
            return None

    def write(self, response: Response, session: WebSession) -> None:
        payload = asdict(session)
        token = self._sealer.seal(KIND, payload, ttl_seconds=session.ttl)
        response.set_cookie(
            COOKIE,
            token,
            max_age=session.ttl,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self._secure,
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=self._secure)


def check_csrf(session: WebSession | None, sent: str | None) -> None:
    """Refuse a state-changing request whose CSRF token does not match the session's."""
    if session is None or not sent or not hmac.compare_digest(session.csrf, sent):
        raise CSRFError("the form expired or did not come from this site (CSRF check failed)")
