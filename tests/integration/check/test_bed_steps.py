"""Every step against the real bed (Dovecot, the aiosmtpd submission server, the idp)."""

from __future__ import annotations

from mailport.check import CheckCredentials, ConnectionChecker, ServerTarget
from mailport.crypto import Secret
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer


async def test_all_steps_pass_with_implicit_tls(
    checker: ConnectionChecker, dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str]
) -> None:
    user, pw = password_user
    result = await checker.check(
        ServerTarget("127.0.0.1", dovecot.imaps_port, "ssl"),
        ServerTarget("127.0.0.1", smtp.tls_port, "ssl"),
        CheckCredentials(user, password=Secret(pw)),
        ca_file=dovecot.ca_file,
    )
    body = result.to_dict()
    print(body)
    assert body["ok"] is True
