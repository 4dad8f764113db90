"""The connection check of an API mailbox (mailport.check.api_check) over a stand-in connector:
the steps, their codes and hints, and the answer's shape (``api`` instead of ``imap``/``smtp``)."""

from __future__ import annotations

import pytest

from mailport.check.api_check import check_api
from mailport.crypto import Secret
from mailport.errors import (
    ApiNotEnabledError,
    MailportError,
    OAuthPermissionMissingError,
    OAuthTokenRejectedError,
    ReauthRequiredError,
)
from mailport.failures import classify_code


class Profiled:
    """connect() is the profile call: it answers, or fails as the API would."""

    def __init__(self, failure: MailportError | None = None) -> None:
        self.failure = failure
        self.connected = self.disconnected = 0

    async def connect(self) -> None:
        self.connected += 1
        if self.failure is not None:
            raise self.failure

    async def disconnect(self) -> None:
        self.disconnected += 1


async def token() -> Secret:
    return Secret("t0ken-value")


async def test_a_working_mailbox_passes_token_and_profile():
    connector = Profiled()
    result = await check_api("graph", connector, token, timeout=5)  # type: ignore[arg-type]
    body = result.to_dict()
    assert body["ok"] is True and body["imap"] is None and body["smtp"] is None
    assert [s["step"] for s in body["api"]["steps"]] == ["token", "profile"]
    assert body["api"]["steps"][1]["detail"] == "signed in to Microsoft Graph"
    assert connector.connected == 1 and connector.disconnected == 1
    assert "t0ken-value" not in repr(body)


@pytest.mark.parametrize(
    ("failure", "code", "status"),
    [
        (OAuthTokenRejectedError("the Gmail API refused the access token"), "oauth_token_rejected", "error"),
        (OAuthPermissionMissingError("gmail.modify was not granted"), "oauth_permission_missing", "error"),
        (ApiNotEnabledError("Gmail API has not been used in project 42"), "api_not_enabled", "error"),
    ],
)
async def test_a_profile_failure_is_a_step_with_its_code_and_hint(failure, code, status):
    result = await check_api("gmail_api", Profiled(failure), token, timeout=5)  # type: ignore[arg-type]
    step = result.to_dict()["api"]["steps"][-1]
    assert step["step"] == "profile" and step["ok"] is False
    assert step["code"] == code and step["hint"] == failure.hint and step["detail"] == failure.message
    assert result.summary() is not None and result.summary().startswith(f"api profile [{code}]")
    assert classify_code(code).status.value == status


async def test_a_dead_grant_stops_at_the_token_step():
    connector = Profiled()

    async def dead() -> Secret:
        raise ReauthRequiredError("Microsoft refused the refresh token")

    result = await check_api("graph", connector, dead, timeout=5)  # type: ignore[arg-type]
    steps = result.to_dict()["api"]["steps"]
    assert [(s["step"], s["ok"], s["code"]) for s in steps] == [("token", False, "reauth_required")]
    assert connector.connected == 0 and classify_code("reauth_required").status.value == "reauth_required"
