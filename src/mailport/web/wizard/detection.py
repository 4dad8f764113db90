"""Steps 1 and 2: the email address (detection as you type) and the sign-in method."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Form, Query, Request
from starlette.responses import Response

from mailport.api.deps import get_detector
from mailport.detect import DetectionResult, Detector
from mailport.errors import InvalidEmailError
from mailport.web.deps import wizard_user
from mailport.web.drafts import Draft, seal
from mailport.web.oauth_setup import oauth_setup
from mailport.web.render import render
from mailport.web.session import WebSession
from mailport.web.state import WebState, get_web
from mailport.web.wizard.context import step_context

API_NAMES = {"gmail_api": "the Gmail API", "graph": "Microsoft Graph"}


def connector_choice(apis: list[str], preset: str | None) -> tuple[str | None, str | None]:
    """The provider's API connector (None: it has none) and the connector fixed by a connect
    link (``imap``, or ``api`` / that API's key; None: the visitor chooses, API pre-selected)."""
    api = apis[0] if apis else None
    if api is None or preset is None:
        return api, None
    if preset == "imap":
        return api, "imap"
    if preset in ("api", api):
        return api, api
    return api, None  # another provider's API: this account chooses for itself


async def _oauth_choices(web: WebState, session: WebSession, provider: str | None) -> dict[str, Any]:
    if provider is None or provider not in web.services.oauth.oauth.registry:
        return {"oauth_usable": False, "device_usable": False}
    assert session.tenant_id is not None
    usable = await web.services.oauth.tenant_apps.usable(provider, session.tenant_id)
    definition = web.services.oauth.oauth.registry.get(provider)
    api, preset = connector_choice(sorted(definition.apis), session.link.connector if session.link else None)
    return {
        "api_connector": api,
        "api_name": API_NAMES.get(api or "", api),
        "connector_preset": preset,
        "oauth_usable": usable,
        "device_usable": usable
        and definition.device_authorization_endpoint is not None
        and definition.device_flow_allows_mail,
        "oauth_name": definition.name,
        "oauth_setup": None if usable else oauth_setup(provider, definition.name),
    }


def _draft_from_detection(session: WebSession, result: DetectionResult, purpose: str | None) -> Draft:
    methods = result.auth_methods
    return Draft(
        tenant_id=session.tenant_id or "",
        email=result.email,
        provider_id=result.provider[0] if result.provider else None,
        provider_name=result.provider[1] if result.provider else None,
        oauth_provider=result.oauth.provider if result.oauth else None,
        auth_method="app_password" if "app_password" in methods and "password" not in methods else "password",
        imap=result.imap,
        smtp=result.smtp,
        **_pop3_offer(result),
        purpose=purpose,
        hints=tuple(h.to_dict() for h in result.hints),
    )


def _pop3_offer(result: DetectionResult) -> dict[str, Any]:
    """Detection offers POP3 only when it found no IMAP server: the draft then reads the
    mailbox with the pop3 connector."""
    return {"pop3": result.pop3, "connector": "pop3"} if result.protocol == "pop3" else {}


async def _detect(detector: Detector, email: str) -> DetectionResult:
    """Detection; it accepts exactly the addresses a mailbox accepts (one rule,
    :func:`mailport.validation.parse_email`), so its ``InvalidEmailError`` is final."""
    return await detector.detect(email)


async def email_step(
    request: Request,
    email: str = Query("", max_length=320),
    again: bool = Query(False),
    session: WebSession = Depends(wizard_user),
) -> Response:
    if session.link is not None and not email:
        email = session.link.email or ""
    return render(request, "wizard/email.html", step_context(1, email=email, again=again))


async def detect_fragment(
    request: Request,
    email: str = Form("", max_length=320),
    session: WebSession = Depends(wizard_user),
    detector: Detector = Depends(get_detector),
) -> Response:
    email = email.strip()
    if "@" not in email or email.endswith("@") or "." not in email.rpartition("@")[2]:
        return render(request, "wizard/_detect.html", {"waiting": True})
    try:
        result = await _detect(detector, email)
    except InvalidEmailError as exc:
        return render(request, "wizard/_detect.html", {"invalid": exc.message})
    return render(request, "wizard/_detect.html", {"result": result})


async def method_step(
    request: Request,
    email: str = Form("", max_length=320),
    session: WebSession = Depends(wizard_user),
    web: WebState = Depends(get_web),
    detector: Detector = Depends(get_detector),
) -> Response:
    try:
        result = await _detect(detector, email.strip())
    except InvalidEmailError as exc:
        return render(
            request,
            "wizard/email.html",
            step_context(1, email=email, error=exc.message, hint=exc.hint),
            status_code=422,
        )
    purpose = session.link.purpose if session.link else None
    draft = _draft_from_detection(session, result, purpose)
    choices = await _oauth_choices(web, session, draft.oauth_provider)
    return render(
        request,
        "wizard/method.html",
        step_context(
            2,
            draft=draft,
            sealed=seal(web.sealer, draft),
            result=result,
            password_possible=bool({"password", "app_password"} & set(result.auth_methods))
            or not result.auth_methods,
            **choices,
        ),
    )
