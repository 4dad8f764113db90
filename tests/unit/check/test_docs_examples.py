"""The failures docs/check.md shows are the ones the catalog gives for those words."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailport.diagnosis import Failure, ServerReply, diagnose

DOC = (Path(__file__).resolve().parents[3] / "docs" / "check.md").read_text()


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (
            Failure(
                step="authentication",
                protocol="imap",
                host="outlook.office365.com",
                auth="password",
                reply=ServerReply.imap("NO AuthFailed:LogonDenied-BasicAuthBlocked"),
            ),
            "basic_auth_blocked",
        ),
        (
            Failure(
                step="smtp_auth",
                protocol="smtp",
                host="smtp.office365.com",
                auth="password",
                reply=ServerReply.smtp(
                    535,
                    "5.7.139 Authentication unsuccessful, "
                    "SmtpClientAuthentication is disabled for the Tenant.",
                ),
            ),
            "smtp_auth_disabled",
        ),
    ],
)
def test_the_documented_examples_hold(failure: Failure, code: str) -> None:
    found = diagnose(failure)
    assert found.code == code
    assert f"code: {code}" in DOC
    assert found.server_said is not None and found.server_said.split(" …")[0][:40] in DOC
    assert found.hint[:60] in DOC
