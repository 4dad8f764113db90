"""Step 3 for passwords: the password, and the server settings form (filled from detection,
validated field by field as the person leaves it)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from mailport.mailboxes.schemas import ServerIn
from mailport.web.deps import wizard_user
from mailport.web.draft_step import DraftStep, draft_step, open_sealed_draft
from mailport.web.drafts import Draft, seal
from mailport.web.render import render
from mailport.web.session import WebSession
from mailport.web.state import WebState, get_web
from mailport.web.wizard.context import form_values, step_context
from mailport.web.wizard.testing import start_test


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
    incoming = draft.pop3 if draft.connector == "pop3" else draft.imap
    if incoming is None or not incoming.host:
        return render(
            step.request,
            "wizard/manual.html",
            step_context(
                3, draft=draft, sealed=seal(step.web.sealer, draft), values=form_values(draft), errors={}
            ),
        )
    return await start_test(step.request, step.web, step.session, draft)


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
        "port": "Ports are numbers from 1 to 65535 (IMAP 993 or 143, POP3 995 or 110, SMTP 465 or 587).",
        "security": "Choose SSL/TLS, STARTTLS or none.",
    }.get(field, message.removeprefix("Value error, "))


async def manual_save(
    request: Request,
    session: WebSession = Depends(wizard_user),
    web: WebState = Depends(get_web),
) -> Response:
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str)}
    draft = open_sealed_draft(web, form.get("draft", ""), session)
    errors: dict[str, str] = {}
    pop3 = form.get("incoming") == "pop3" and draft.connector in ("imap", "pop3")
    imap = _server_in("pop3" if pop3 else "imap", form, errors)
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
        **_incoming(draft, imap, pop3=pop3),
        smtp=smtp.to_model(draft.smtp) if smtp else None,
        auth_method=draft.auth_method if draft.auth_method != "oauth2" else "password",
    )
    return await start_test(request, web, session, draft)


def _incoming(draft: Draft, server: ServerIn, *, pop3: bool) -> dict[str, Any]:
    """The draft's incoming server: IMAP, or POP3 (then the pop3 connector and no IMAP)."""
    if pop3:
        return {"pop3": server.to_model(draft.pop3), "imap": None, "connector": "pop3"}
    connector = "imap" if draft.connector == "pop3" else draft.connector
    return {"imap": server.to_model(draft.imap), "pop3": None, "connector": connector}


async def validate_field(request: Request, session: WebSession = Depends(wizard_user)) -> Response:
    """Inline validation of one server field as the person leaves it (htmx)."""
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str)}
    name = str(request.query_params.get("field", ""))
    prefix = name.partition("_")[0]
    errors: dict[str, str] = {}
    if prefix in ("imap", "smtp", "pop3"):
        _server_in(prefix, form, errors)
    message = errors.get(name, "")
    return render(request, "wizard/_field_error.html", {"name": name, "message": message})
