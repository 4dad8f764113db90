"""The watcher's verdict on a refused sign-in, from a scripted server: a bare tagged ``NO``
after a pause is ``invalid_credentials`` (and not retried in a loop); ``[UNAVAILABLE]`` is
temporary (``auth_unavailable``, retried with backoff, never the 30-minute authentication wait)."""

from __future__ import annotations

import asyncio

from mailport.events import Event
from mailport.mailboxes.models import Mailbox
from mailport.sync.health import mailbox_health
from tests.fixtures.scripted import IMAPScript, scripted_imap
from tests.integration.sync.conftest import Bed, all_events, wait_for
from tests.integration.sync.test_actions import options


def _logins(script: IMAPScript) -> int:
    return script.commands.count("AUTHENTICATE") + script.commands.count("LOGIN")


async def _first_error(bed: Bed, script: IMAPScript) -> tuple[Mailbox, list[Event]]:
    """Watch a mailbox on the scripted server until its first ``mailbox.error`` (then 1 s more:
    a retry loop would log in again meanwhile)."""
    async with scripted_imap(script) as port:
        orchestrator = bed.orchestrator(options=options())
        await orchestrator.start()
        try:
            mailbox = await bed.add_mailbox(port=port)
            orchestrator.poke()
            errors = await wait_for(
                lambda: all_events(bed.services, mailbox_id=mailbox.id, type="mailbox.error"), timeout=15
            )
            await asyncio.sleep(1.0)
            assert orchestrator.watchers[mailbox.id].status.state == "error"
        finally:
            await orchestrator.stop()
    return mailbox, errors


async def test_a_bare_no_after_a_pause_is_invalid_credentials_in_health(bed: Bed) -> None:
    refusal = "NO Login failed: authentication failure"
    script = IMAPScript(login=refusal, authenticate=refusal, login_delay=3.0)
    mailbox, errors = await _first_error(bed, script)
    assert _logins(script) == 1  # an authentication failure waits auth_retry_seconds
    assert errors[0].payload["error"] == "invalid_credentials"
    fresh = await bed.services.mailboxes.repository.get_by_id(mailbox.id)
    [health] = await mailbox_health(bed.services.database, [fresh])
    assert health.status == "error"
    assert health.last_error is not None and health.last_error.startswith("[invalid_credentials]")


async def test_unavailable_is_retried_with_backoff_not_as_a_wrong_password(bed: Bed) -> None:
    refusal = "NO [UNAVAILABLE] Temporary authentication failure."
    script = IMAPScript(login=refusal, authenticate=refusal)
    async with scripted_imap(script) as port:
        orchestrator = bed.orchestrator(options=options(backoff_base=0.2, backoff_cap=0.5))
        await orchestrator.start()
        try:
            mailbox = await bed.add_mailbox(port=port)
            orchestrator.poke()

            async def retried() -> bool:
                return _logins(script) >= 3

            await wait_for(retried, timeout=10)
        finally:
            await orchestrator.stop()
    errors = await all_events(bed.services, mailbox_id=mailbox.id, type="mailbox.error")
    assert errors[0].payload["error"] == "auth_unavailable"


async def test_the_providers_words_refine_the_watchers_verdict_like_the_checks(bed: Bed) -> None:
    refusal = (
        "NO [ALERT] Application-specific password required: "
        "https://support.google.com/accounts/answer/185833 (Failure)"
    )
    script = IMAPScript(login=refusal, authenticate=refusal)
    _mailbox, errors = await _first_error(bed, script)
    assert errors[0].payload["error"] == "app_password_required"
    assert "app password" in errors[0].payload["hint"]
