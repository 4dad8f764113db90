"""The connect wizard: email address → authentication method → OAuth or manual settings →
test & verify → final settings → save.

Every step is a server-rendered page; htmx adds the live parts (detection as you type, the
check's steps as they finish, the device sign-in's status). The work in progress travels as a
sealed draft (:mod:`mailport.web.drafts`); nothing is stored before "Save", except an OAuth
mailbox, which the OAuth callback creates (:mod:`mailport.oauth.connect`) and the wizard then
tests and finishes. Operators and connect-link visitors use the same pages; a link visitor is
sent back to the link's ``return_url`` with ``?mailbox_id=…`` after saving.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from mailport.api.deps import get_detector
from mailport.detect import DetectionResult, Detector
from mailport.errors import InputError, InvalidEmailError, all_error_classes
from mailport.mailboxes.models import AuthMethod, MailboxStatus, NewMailbox, ProcessingSettings
from mailport.mailboxes.schemas import MailboxUpdate, ServerIn, SettingsIn, SettingsPatch
from mailport.validation import normalize_email
from mailport.web.deps import csrf, wizard_user
from mailport.web.draft_step import DraftStep, draft_step, open_sealed_draft
from mailport.web.drafts import Draft, Server, seal
from mailport.web.oauth_setup import oauth_setup
from mailport.web.render import WebRoute, redirect, render
from mailport.web.session import WebSession
from mailport.web.state import WebState, get_web
from mailport.web.wizard_parts import (
    check_target,
    form_values,
    oauth_return_url,
    record_check_result,
    step_context,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

LINK_OAUTH_WINDOW = timedelta(minutes=15)
# Failures that only signing in again can fix (as the check service decides).
CHECK_INTERVALS = ((30, "30 seconds"), (60, "1 minute"), (300, "5 minutes"), (900, "15 minutes"))


def _hint_for(code: str) -> str:
    for cls in all_error_classes():
        if cls.code == code:
            return cls.hint
    return "Try again, or configure the mailbox manually."


async def _oauth_choices(web: WebState, session: WebSession, provider: str | None) -> dict[str, Any]:
    if provider is None or provider not in web.services.oauth.oauth.registry:
        return {"oauth_usable": False, "device_usable": False}
    assert session.tenant_id is not None
    usable = await web.services.oauth.tenant_apps.usable(provider, session.tenant_id)
    definition = web.services.oauth.oauth.registry.get(provider)
    return {
        "oauth_usable": usable,
        "device_usable": usable
        and definition.device_authorization_endpoint is not None
        and definition.device_flow_allows_mail,
        "oauth_name": definition.name,
        "oauth_setup": None if usable else oauth_setup(provider, definition.name),
    }


def _draft_from_detection(session: WebSession, result: DetectionResult, purpose: str | None) -> Draft:
    def server(found: Any) -> Server | None:
        return None if found is None else Server(found.host, found.port, found.security, found.username)

    methods = result.auth_methods
    return Draft(
        tenant_id=session.tenant_id or "",
        email=result.email,
        provider_id=result.provider[0] if result.provider else None,
        provider_name=result.provider[1] if result.provider else None,
        oauth_provider=result.oauth.provider if result.oauth else None,
        auth_method="app_password" if "app_password" in methods and "password" not in methods else "password",
        imap=server(result.imap),
        smtp=server(result.smtp),
        purpose=purpose,
        hints=tuple(h.to_dict() for h in result.hints),
    )


async def _detect(detector: Detector, email: str) -> DetectionResult:
    """Detection; it accepts exactly the addresses a mailbox accepts (one rule,
    :func:`mailport.validation.parse_email`), so its ``InvalidEmailError`` is final."""
    return await detector.detect(email)


# --------------------------------------------------------------------------- step 1: email


@router.get("/connect")
async def email_step(
    request: Request,
    email: str = Query("", max_length=320),
    again: bool = Query(False),
    session: WebSession = Depends(wizard_user),
) -> Response:
    if session.link is not None and not email:
        email = session.link.email or ""
    return render(request, "wizard/email.html", step_context(1, email=email, again=again))


@router.post("/connect/detect", dependencies=[Depends(csrf)])
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


@router.post("/connect/method", dependencies=[Depends(csrf)])
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


# --------------------------------------------------------------------------- step 2/3: password, manual


@router.post("/connect/password", dependencies=[Depends(csrf)])
async def password_step(
    password: str = Form("", max_length=1024), step: DraftStep = Depends(draft_step)
) -> Response:
    draft = step.draft
    if not password:
        return render(
            step.request,
            "wizard/manual.html",
            step_context(
                3,
                draft=draft,
                sealed=step.token,
                values=form_values(draft),
                errors={"password": "Enter the password."},
            ),
            status_code=422,
        )
    draft = draft.with_(password=password)
    if draft.imap is None or not draft.imap.host:
        return render(
            step.request,
            "wizard/manual.html",
            step_context(
                3, draft=draft, sealed=seal(step.web.sealer, draft), values=form_values(draft), errors={}
            ),
        )
    return _start_test(step.request, step.web, step.session, draft)


@router.post("/connect/manual", dependencies=[Depends(csrf)])
async def manual_step(step: DraftStep = Depends(draft_step)) -> Response:
    draft = step.draft
    return render(
        step.request,
        "wizard/manual.html",
        step_context(3, draft=draft, sealed=step.token, values=form_values(draft), errors={}),
    )


def _server_in(prefix: str, form: dict[str, str], errors: dict[str, str]) -> ServerIn | None:
    try:
        port = int(form.get(f"{prefix}_port", "") or "0")
    except ValueError:
        errors[f"{prefix}_port"] = "Enter a port number (for example 993 or 587)."
        port = 0
    try:
        return ServerIn(
            host=form.get(f"{prefix}_host", "").strip(),
            port=port,
            security=form.get(f"{prefix}_security", "ssl"),
            username=form.get(f"{prefix}_username", "").strip() or None,
        )
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "host"
            errors.setdefault(f"{prefix}_{field}", _friendly(field, str(error["msg"])))
        return None


def _friendly(field: str, message: str) -> str:
    return {
        "host": "Enter the server's host name, for example imap.example.com.",
        "port": "Ports are numbers from 1 to 65535 (IMAP 993 or 143, SMTP 465 or 587).",
        "security": "Choose SSL/TLS, STARTTLS or none.",
    }.get(field, message.removeprefix("Value error, "))


@router.post("/connect/manual/save", dependencies=[Depends(csrf)])
async def manual_save(
    request: Request,
    session: WebSession = Depends(wizard_user),
    web: WebState = Depends(get_web),
) -> Response:
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str)}
    draft = open_sealed_draft(web, form.get("draft", ""), session)
    errors: dict[str, str] = {}
    imap = _server_in("imap", form, errors)
    use_smtp = form.get("use_smtp") == "on"
    smtp = _server_in("smtp", form, errors) if use_smtp else None
    password = form.get("password", "")
    if len(password) > 1024:  # as /connect/password: the sealed draft must stay small
        errors["password"] = "A password is at most 1024 characters."
        password = ""
    if password:
        # Kept (sealed in the draft) when the form comes back for another field: nobody
        # should type a password twice, and it is never written back into the page.
        draft = draft.with_(password=password)
    if not draft.password and draft.auth_method != "oauth2":
        errors["password"] = "Enter the password (or app password) of the mailbox."
    if errors:
        values = {
            **form_values(draft),
            **{k: v for k, v in form.items() if k != "password"},
            "use_smtp": use_smtp,
        }
        return render(
            request,
            "wizard/manual.html",
            step_context(3, draft=draft, sealed=seal(web.sealer, draft), values=values, errors=errors),
            status_code=422,
        )
    assert imap is not None
    # A certificate trusted on the test step stays with its server while the host stays the same.
    draft = draft.with_(
        imap=Server.from_model(imap.to_model(draft.imap.to_model() if draft.imap else None)),
        smtp=Server.from_model(smtp.to_model(draft.smtp.to_model() if draft.smtp else None))
        if smtp
        else None,
        auth_method=draft.auth_method if draft.auth_method != "oauth2" else "password",
    )
    return _start_test(request, web, session, draft)


@router.post("/connect/validate", dependencies=[Depends(csrf)])
async def validate_field(request: Request, session: WebSession = Depends(wizard_user)) -> Response:
    """Inline validation of one server field as the person leaves it (htmx)."""
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str)}
    name = str(request.query_params.get("field", ""))
    prefix = name.partition("_")[0]
    errors: dict[str, str] = {}
    if prefix in ("imap", "smtp"):
        _server_in(prefix, form, errors)
    message = errors.get(name, "")
    return render(request, "wizard/_field_error.html", {"name": name, "message": message})


# --------------------------------------------------------------------------- step 3a: OAuth


@router.post("/connect/oauth", dependencies=[Depends(csrf)])
async def oauth_start(
    provider: str = Form(..., max_length=50), step: DraftStep = Depends(draft_step)
) -> Response:
    draft = step.draft
    started = await step.web.services.oauth.authorize(
        step.tenant_id,
        provider,
        email=draft.email,
        mailbox_id=draft.mailbox_id,
        purpose=draft.purpose,
        return_url=oauth_return_url(step.web),
    )
    return redirect(step.request, started.authorization_url)


@router.get("/connect/oauth/return")
async def oauth_return(
    request: Request,
    mailbox_id: str | None = Query(None, max_length=60),
    error: str | None = Query(None, max_length=100),
    session: WebSession = Depends(wizard_user),
    web: WebState = Depends(get_web),
) -> Response:
    if error or not mailbox_id:
        code = error or "oauth_error"
        return render(
            request,
            "error.html",
            {
                "code": code,
                "detail": "The sign-in did not complete, so no mailbox was connected.",
                "hint": _hint_for(code),
                "status": 400,
                "retry_url": "/connect",
            },
            status_code=400,
        )
    assert session.tenant_id is not None
    mailbox = await web.services.mailboxes.get(session.tenant_id, mailbox_id)
    if session.role == "link" and (
        mailbox.auth_method is not AuthMethod.OAUTH2
        or web.services.oauth.now() - mailbox.updated_at > LINK_OAUTH_WINDOW
    ):
        # A connect link finishes the mailbox its own sign-in just stored, nothing else of the tenant.
        raise InputError(
            "this sign-in does not belong to this connect session",
            hint="Start again from the link's first step.",
        )
    draft = Draft(
        tenant_id=session.tenant_id,
        email=mailbox.email,
        provider_id=mailbox.provider_id,
        provider_name=mailbox.oauth.provider.title() if mailbox.oauth else None,
        oauth_provider=mailbox.oauth.provider if mailbox.oauth else None,
        auth_method="oauth2",
        imap=Server.from_model(mailbox.imap),
        smtp=Server.from_model(mailbox.smtp),
        mailbox_id=mailbox.id,
        purpose=mailbox.purpose or (session.link.purpose if session.link else None),
    )
    return _start_test(request, web, session, draft)


@router.post("/connect/device", dependencies=[Depends(csrf)])
async def device_start(
    provider: str = Form(..., max_length=50), step: DraftStep = Depends(draft_step)
) -> Response:
    draft = step.draft
    oauth = step.web.services.oauth
    record = await oauth.start_device(step.tenant_id, provider, email=draft.email, purpose=draft.purpose)
    remaining = int((record.expires_at - oauth.now()).total_seconds())
    return render(
        step.request,
        "wizard/device.html",
        step_context(3, draft=draft, sealed=step.token, flow=record, remaining=max(0, remaining)),
    )


@router.get("/connect/device/{flow_id}")
async def device_status(
    request: Request,
    flow_id: str,
    session: WebSession = Depends(wizard_user),
    web: WebState = Depends(get_web),
) -> Response:
    assert session.tenant_id is not None
    record = await web.services.oauth.device_status(session.tenant_id, flow_id)
    if record.status == "complete" and record.mailbox_id:
        return redirect(request, f"/connect/oauth/return?{urlencode({'mailbox_id': record.mailbox_id})}")
    return render(request, "wizard/_device_status.html", {"flow": record})


# --------------------------------------------------------------------------- step 4: test


def _start_test(request: Request, web: WebState, session: WebSession, draft: Draft) -> Response:
    assert session.tenant_id is not None
    # The same per-tenant budget as POST /v1/check: a connect-link visitor must not turn the
    # wizard into a password-guessing relay or a port scanner (the SSRF guard vets every host).
    web.services.check_limiter.check(session.tenant_id)
    run = web.runs.start(
        session.tenant_id,
        check_target(web, draft),
        context={
            "draft": seal(web.sealer, draft.with_(tested=True)),
            "retry": seal(web.sealer, draft),
            "smtp": draft.smtp is not None,
        },
        on_done=record_check_result(web, session.tenant_id, draft),
    )
    return render(
        request, "wizard/test.html", step_context(4, draft=draft, sealed=seal(web.sealer, draft), run=run)
    )


@router.post("/connect/test", dependencies=[Depends(csrf)])
async def test_step(step: DraftStep = Depends(draft_step)) -> Response:
    return _start_test(step.request, step.web, step.session, step.draft)


@router.post("/connect/trust", dependencies=[Depends(csrf)])
async def trust_certificate(
    run_id: str = Form(..., alias="run", max_length=40),
    sha256: str = Form(..., max_length=100),
    step: DraftStep = Depends(draft_step),
) -> Response:
    """ "Trust this certificate": pin the certificate the server presented in that test run (taken
    from the run, never from the form) on the servers that refused it, and test again."""
    run = step.web.runs.get(step.tenant_id, run_id)
    if run is None:
        raise InputError("this test is no longer available", hint="Run the test again.")
    draft = step.draft
    for certificate, protocols, _code in run.refused_certificates:
        if certificate.sha256 != sha256:
            continue
        for protocol in protocols:
            server = draft.imap if protocol == "imap" else draft.smtp
            if server is not None:
                trusted = replace(server, trusted_certificate=certificate.pem)
                draft = draft.with_(**{protocol: trusted})
        return _start_test(step.request, step.web, step.session, draft)
    raise InputError("that certificate was not presented in this test", hint="Run the test again.")


@router.get("/connect/test/{run_id}")
async def test_progress(
    request: Request,
    run_id: str,
    panel: bool = Query(False),
    session: WebSession = Depends(wizard_user),
    web: WebState = Depends(get_web),
) -> Response:
    assert session.tenant_id is not None
    run = web.runs.get(session.tenant_id, run_id)
    if run is None:
        raise InputError("this test is no longer available", hint="Run the test again.")
    return render(request, "wizard/_steps.html", {"run": run, "wizard": not panel})


# --------------------------------------------------------------------------- step 5: final settings


@router.post("/connect/settings", dependencies=[Depends(csrf)])
async def settings_step(step: DraftStep = Depends(draft_step)) -> Response:
    draft = step.draft
    # A new mailbox starts from the API's defaults; a stored one (reconnect, OAuth) from its own
    # settings, so that saving the last step never silently resets them.
    current = ProcessingSettings()
    if draft.mailbox_id is not None:
        current = (await step.web.services.mailboxes.get(step.tenant_id, draft.mailbox_id)).settings
    action, _, folder = current.after_processing.partition(":")
    values = {
        "from_name": current.from_name or "",
        "check_interval": current.check_interval,
        "after_processing": action,
        "move_folder": folder or "Processed",
        "purpose": draft.purpose or "",
    }
    return render(
        step.request,
        "wizard/settings.html",
        step_context(
            5, draft=draft, sealed=step.token, values=values, errors={}, intervals=_intervals(values)
        ),
    )


def _intervals(values: dict[str, Any]) -> list[tuple[int, str]]:
    """The usual choices, plus the mailbox's own interval when it is another (set by the API)."""
    choices = list(CHECK_INTERVALS)
    current = str(values.get("check_interval", ""))  # as posted, on a form that comes back
    if current.isascii() and current.isdigit() and int(current) not in {seconds for seconds, _ in choices}:
        choices = sorted([*choices, (int(current), f"{current} seconds")])
    return choices


@router.post("/connect/save", dependencies=[Depends(csrf)])
async def save(
    from_name: str = Form("", max_length=200),
    check_interval: str = Form("60", max_length=10),
    after_processing: str = Form("none", max_length=20),
    move_folder: str = Form("", max_length=500),
    purpose: str = Form("", max_length=100),
    confirm_delete: str = Form("", max_length=5),
    step: DraftStep = Depends(draft_step),
) -> Response:
    request, session, web, draft = step.request, step.session, step.web, step.draft
    errors: dict[str, str] = {}
    action = f"move:{move_folder.strip()}" if after_processing == "move" else after_processing
    if after_processing == "delete" and confirm_delete != "on":
        errors["after_processing"] = "Tick the box to confirm that processed messages are deleted."
    processing: SettingsIn | None = None
    try:
        processing = SettingsIn(
            from_name=from_name.strip() or None,
            check_interval=(
                int(check_interval) if check_interval.isascii() and check_interval.isdigit() else -1
            ),
            after_processing=action,
        )
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "settings"
            errors.setdefault(field, str(error["msg"]).removeprefix("Value error, "))
    if errors or processing is None:
        values = {
            "from_name": from_name,
            "check_interval": check_interval,
            "after_processing": after_processing,
            "move_folder": move_folder,
            "purpose": purpose,
        }
        return render(
            request,
            "wizard/settings.html",
            step_context(
                5, draft=draft, sealed=step.token, values=values, errors=errors, intervals=_intervals(values)
            ),
            status_code=422,
        )
    label = purpose.strip() or None
    mailboxes = web.services.mailboxes
    if draft.mailbox_id is None:
        assert draft.imap is not None
        mailbox = await mailboxes.create(
            step.tenant_id,
            NewMailbox(
                email=normalize_email(draft.email),
                auth_method=AuthMethod(draft.auth_method),
                imap=draft.imap.to_model(),
                smtp=draft.smtp.to_model() if draft.smtp else None,
                purpose=label,
                provider_id=draft.provider_id,
                password=draft.secret,
                settings=ProcessingSettings(
                    from_name=processing.from_name,
                    check_interval=processing.check_interval,
                    after_processing=processing.after_processing,
                ),
            ),
        )
    else:
        patch: dict[str, Any] = {
            "purpose": label,
            "settings": SettingsPatch(
                from_name=processing.from_name,
                check_interval=processing.check_interval,
                after_processing=processing.after_processing,
            ),
        }
        if draft.password:
            patch["password"] = draft.password
            patch["imap"] = ServerIn(**_server_dict(draft.imap))
            patch["smtp"] = ServerIn(**_server_dict(draft.smtp)) if draft.smtp else None
        try:
            mailbox = await mailboxes.update(step.tenant_id, draft.mailbox_id, MailboxUpdate(**patch))
        except ValidationError as exc:
            raise InputError(str(exc.errors()[0]["msg"])) from exc
    if draft.tested and draft.mailbox_id is None:
        # It passed the connection test a moment ago: say so until the watcher reports.
        mailbox = await mailboxes.repository.record_health(
            mailbox.id, status=MailboxStatus.CONNECTED, error=None, at=web.services.oauth.now()
        )
    if session.role == "link":
        return await _finish_link(request, web, session, mailbox.id)
    return render(request, "wizard/done.html", step_context(6, mailbox=mailbox))


def _server_dict(server: Server | None) -> dict[str, Any]:
    assert server is not None
    return {
        "host": server.host,
        "port": server.port,
        "security": server.security,
        "username": server.username or None,
        "trusted_certificate": server.trusted_certificate or None,
    }


async def _finish_link(request: Request, web: WebState, session: WebSession, mailbox_id: str) -> Response:
    """A connect link connects one mailbox: end the session, go back to the application."""
    from dataclasses import replace

    assert session.link is not None
    return_url = session.link.return_url
    if return_url:
        separator = "&" if "?" in return_url else "?"
        response = redirect(
            request, f"{return_url}{separator}{urlencode({'mailbox_id': mailbox_id, 'status': 'connected'})}"
        )
    else:
        response = render(
            request,
            "wizard/done.html",
            step_context(
                6,
                mailbox=await web.services.mailboxes.get(session.tenant_id or "", mailbox_id),
                link_done=True,
            ),
        )
    web.sessions.write(response, replace(session, done=True))
    return response
