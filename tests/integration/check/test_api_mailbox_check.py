"""``POST /v1/mailboxes/{id}/test`` of a ``gmail_api`` mailbox, against the fake Gmail API: the
check goes through the mailbox's connector (token, then ``users.getProfile``), records the
mailbox's health, and names what went wrong — a grant without ``gmail.modify``, the Gmail API
switched off for the project."""

from __future__ import annotations

from mailport.bootstrap import Services
from mailport.errors import ApiNotEnabledError
from mailport.mailboxes.models import MailboxStatus
from tests.fakes.gmail import GmailFake
from tests.fixtures.gmail import connect_gmail_mailbox
from tests.integration.gmail.sync_bed import gmail_services
from tests.mailstack.idp import MockIdP

__all__ = ["gmail_services"]  # fixture


def steps(result: dict[str, object]) -> list[tuple[str, bool, str | None]]:
    api = result["api"]
    assert isinstance(api, dict)
    return [(s["step"], s["ok"], s.get("code")) for s in api["steps"]]


async def test_a_gmail_api_mailbox_is_checked_through_its_connector(
    gmail_services: Services, idp: MockIdP, gmail_fake: GmailFake
) -> None:
    mailbox, _ = await connect_gmail_mailbox(gmail_services, idp, gmail_fake)
    result = (await gmail_services.checks.test_mailbox(mailbox.tenant_id, mailbox.id)).to_dict()
    assert result["ok"] is True and result["imap"] is None and result["smtp"] is None
    assert steps(result) == [("token", True, None), ("profile", True, None)]
    assert result["api"]["steps"][1]["detail"] == "signed in to the Gmail API"
    stored = await gmail_services.mailboxes.get(mailbox.tenant_id, mailbox.id)
    assert stored.health.status is MailboxStatus.CONNECTED
    profiles = [e for e in gmail_fake.requests if e.path.endswith("/users/me/profile") and e.status == 200]
    assert profiles  # the check asked Gmail who the token belongs to


async def test_a_grant_without_gmail_modify_is_named(
    gmail_services: Services, idp: MockIdP, gmail_fake: GmailFake
) -> None:
    mailbox, _ = await connect_gmail_mailbox(gmail_services, idp, gmail_fake, scope="openid email")
    result = (await gmail_services.checks.test_mailbox(mailbox.tenant_id, mailbox.id)).to_dict()
    assert result["ok"] is False
    assert steps(result) == [("token", True, None), ("profile", False, "oauth_permission_missing")]
    stored = await gmail_services.mailboxes.get(mailbox.tenant_id, mailbox.id)
    assert stored.health.status is MailboxStatus.ERROR  # a person must act, not a dead grant
    assert stored.health.last_error and "oauth_permission_missing" in stored.health.last_error


async def test_the_gmail_api_switched_off_is_named(
    gmail_services: Services, idp: MockIdP, gmail_fake: GmailFake
) -> None:
    mailbox, _ = await connect_gmail_mailbox(gmail_services, idp, gmail_fake)
    gmail_fake.fail(403, 1, email=mailbox.email, reason="accessNotConfigured")
    result = (await gmail_services.checks.test_mailbox(mailbox.tenant_id, mailbox.id)).to_dict()
    assert steps(result) == [("token", True, None), ("profile", False, "api_not_enabled")]
    assert result["api"]["steps"][1]["hint"] == ApiNotEnabledError.hint  # what a person must do
