"""Step 5, the final settings, and saving: a new mailbox is created, a stored one (reconnect,
OAuth) updated, through :class:`~mailport.mailboxes.service.MailboxService`; a connect link's
visitor is then sent back to the link's application."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from mailport.errors import InputError
from mailport.mailboxes.models import (
    ROLE_PREFIX,
    AuthMethod,
    MailboxStatus,
    NewMailbox,
    ProcessingSettings,
    WatchedFolder,
)
from mailport.mailboxes.schemas import MailboxUpdate, ServerIn, SettingsIn, SettingsPatch
from mailport.validation import normalize_email
from mailport.web.draft_step import DraftStep, draft_step
from mailport.web.drafts import Draft
from mailport.web.render import redirect, render
from mailport.web.session import WebSession
from mailport.web.state import WebState
from mailport.web.wizard.context import step_context

CHECK_INTERVALS = ((30, "30 seconds"), (60, "1 minute"), (300, "5 minutes"), (900, "15 minutes"))
SENT = ROLE_PREFIX + "sent"  # what "also deliver the mail sent from this mailbox" watches


def _with_sent(current: ProcessingSettings, wanted: bool) -> list[str] | None:
    """The watched folders with the Sent folder added or removed; None when that changes nothing
    (the other folders, set through the API, are left as they are)."""
    specs = [w.spec for w in current.watched]
    if wanted == (SENT in specs):
        return None
    return [*specs, SENT] if wanted else [s for s in specs if s != SENT]


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
        "watch_sent": SENT in [w.spec for w in current.watched],
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


async def save(
    from_name: str = Form("", max_length=200),
    check_interval: str = Form("60", max_length=10),
    after_processing: str = Form("none", max_length=20),
    move_folder: str = Form("", max_length=500),
    purpose: str = Form("", max_length=100),
    confirm_delete: str = Form("", max_length=5),
    watch_sent: str = Form("", max_length=5),
    step: DraftStep = Depends(draft_step),
) -> Response:
    request, session, web, draft = step.request, step.session, step.web, step.draft
    errors: dict[str, str] = {}
    action = f"move:{move_folder.strip()}" if after_processing == "move" else after_processing
    if after_processing == "delete" and confirm_delete != "on":
        errors["after_processing"] = "Tick the box to confirm that processed messages are deleted."
    errors.update(_pop3_action_error(draft.connector, after_processing))
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
            "watch_sent": watch_sent == "on",
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
        assert draft.imap is not None or draft.pop3 is not None
        mailbox = await mailboxes.create(
            step.tenant_id,
            NewMailbox(
                email=normalize_email(draft.email),
                auth_method=AuthMethod(draft.auth_method),
                imap=draft.imap,
                smtp=draft.smtp,
                **_pop3_fields(draft),
                purpose=label,
                provider_id=draft.provider_id,
                password=draft.secret,
                owner=session.owner,
                settings=ProcessingSettings(
                    from_name=processing.from_name,
                    check_interval=processing.check_interval,
                    after_processing=processing.after_processing,
                    folders=(
                        (WatchedFolder("INBOX"), WatchedFolder(SENT))
                        if watch_sent == "on" and draft.connector != "pop3"
                        else ()
                    ),
                ),
            ),
        )
    else:
        current = (await mailboxes.get(step.tenant_id, draft.mailbox_id, owner=session.owner)).settings
        folders = _with_sent(current, watch_sent == "on")
        patch: dict[str, Any] = {
            "purpose": label,
            "settings": SettingsPatch(
                from_name=processing.from_name,
                check_interval=processing.check_interval,
                after_processing=processing.after_processing,
                **({"folders": folders} if folders is not None else {}),
            ),
        }
        if draft.password:
            incoming = draft.pop3 or draft.imap
            assert incoming is not None
            patch["password"] = draft.password
            patch["pop3" if draft.pop3 else "imap"] = ServerIn.from_model(incoming)
            patch["smtp"] = ServerIn.from_model(draft.smtp) if draft.smtp else None
        try:
            mailbox = await mailboxes.update(step.tenant_id, draft.mailbox_id, MailboxUpdate(**patch))
        except ValidationError as exc:
            raise InputError(str(exc.errors()[0]["msg"])) from exc
    if draft.tested and draft.mailbox_id is None:
        # It passed the connection test a moment ago: say so until the watcher reports.
        mailbox = await mailboxes.record_health(
            step.tenant_id,
            mailbox.id,
            status=MailboxStatus.CONNECTED,
            error=None,
            at=web.services.oauth.now(),
        )
    if session.role == "link":
        return await _finish_link(request, web, session, mailbox.id)
    return render(request, "wizard/done.html", step_context(6, mailbox=mailbox))


def _pop3_fields(draft: Draft) -> dict[str, Any]:
    """A POP3 draft's mailbox: the pop3 connector and its server (no IMAP)."""
    return {"connector": "pop3", "pop3": draft.pop3} if draft.connector == "pop3" else {}


def _pop3_action_error(connector: str, after_processing: str) -> dict[str, str]:
    """POP3 has no flags or folders: a processed message is left or deleted."""
    if connector == "pop3" and after_processing not in ("none", "delete"):
        return {"after_processing": "A POP3 mailbox can only leave processed messages or delete them."}
    return {}


async def _finish_link(request: Request, web: WebState, session: WebSession, mailbox_id: str) -> Response:
    """A connect link connects one mailbox: end the session, go back to the application."""
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
