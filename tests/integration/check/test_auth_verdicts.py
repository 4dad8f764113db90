"""Sign-in verdicts from servers that give no response code or a temporary reply, through every
path that reports them: the IMAP and SMTP clients, the connection check (``ConnectionChecker``,
``POST /v1/check``) and the wizard's live check run.

* A password LOGIN answered ``NO Login failed: authentication failure`` after a 3 s pause, with
  no ``[AUTHENTICATIONFAILED]``, is ``invalid_credentials`` like every other wrong password.
* An SMTP ``451`` to AUTH is temporary: ``auth_unavailable``, never a wrong password.
"""

from __future__ import annotations

import ssl

import httpx
import pytest

from mailport.bootstrap import Services
from mailport.check import CheckCredentials, ConnectionChecker, ServerTarget
from mailport.check.runs import CheckRunStore
from mailport.crypto import Secret
from mailport.errors import AuthUnavailableError, InvalidCredentialsError
from mailport.imap import ImapClient, PasswordAuth
from mailport.mailboxes.models import Security, ServerSettings
from mailport.net.guard import HostGuard
from mailport.net.trust import MailTrust
from mailport.smtp.client import SmtpClient
from mailport.web.checks import CheckRun, CheckRuns, CheckTarget
from tests.fixtures.api import TenantHandle
from tests.fixtures.scripted import IMAPScript, SMTPScript, scripted_imap, scripted_smtp
from tests.mailstack.dovecot import Dovecot

NO_CODE = "NO Login failed: authentication failure"
SECRET = "s3cret-not-shown-77"


def slow_refusal() -> IMAPScript:
    return IMAPScript(login=NO_CODE, authenticate=NO_CODE, login_delay=3.0)


def temporary_smtp() -> SMTPScript:
    return SMTPScript(auth="451 4.3.0 Temporary authentication failure, try again later")


async def test_the_imap_client_calls_a_bare_no_to_login_a_wrong_password(
    dovecot: Dovecot, imap_server_tls: ssl.SSLContext
) -> None:
    for mechanism in ("LOGIN", "PLAIN"):
        async with scripted_imap(slow_refusal(), tls=imap_server_tls) as port:
            client = ImapClient("127.0.0.1", port, ca_file=dovecot.ca_file, command_timeout=10)
            await client.connect()
            with pytest.raises(InvalidCredentialsError) as info:
                await client.authenticate(
                    PasswordAuth("someone@example.test", Secret(SECRET), mechanism=mechanism)
                )  # type: ignore[arg-type]
            client.close()
        assert info.value.server_said == "Login failed: authentication failure"
        assert SECRET not in repr(info.value) + str(info.value)


async def test_the_smtp_client_calls_a_451_to_auth_temporary(
    dovecot: Dovecot, imap_server_tls: ssl.SSLContext
) -> None:
    async with scripted_smtp(temporary_smtp(), tls=imap_server_tls) as port:
        client = SmtpClient("127.0.0.1", port, security="tls", ca_file=dovecot.ca_file)
        await client.connect()
        with pytest.raises(AuthUnavailableError) as info:
            await client.authenticate(PasswordAuth("someone@example.test", Secret(SECRET)))
        client.close()
    assert info.value.details["smtp_code"] == 451


async def test_the_check_reports_invalid_credentials_and_a_temporary_smtp_failure(
    checker: ConnectionChecker, dovecot: Dovecot, imap_server_tls: ssl.SSLContext
) -> None:
    checker = ConnectionChecker(HostGuard.for_operator(), timeout=15, step_timeout=6)
    async with (
        scripted_imap(slow_refusal(), tls=imap_server_tls) as imap_port,
        scripted_imap(IMAPScript(), tls=imap_server_tls) as good_imap,
        scripted_smtp(temporary_smtp(), tls=imap_server_tls) as smtp_port,
    ):
        creds = CheckCredentials("someone@example.test", password=Secret(SECRET))
        wrong = await checker.check(
            ServerTarget("127.0.0.1", imap_port, "ssl"), None, creds, ca_file=dovecot.ca_file
        )
        later = await checker.check(
            ServerTarget("127.0.0.1", good_imap, "ssl"),
            ServerTarget("127.0.0.1", smtp_port, "ssl"),
            creds,
            ca_file=dovecot.ca_file,
        )
    step = wrong.to_dict()["imap"]["steps"][-1]
    assert (step["step"], step["code"]) == ("authentication", "invalid_credentials")
    assert step["server_said"] == NO_CODE
    assert step["ms"] >= 2900
    smtp_step = later.to_dict()["smtp"]["steps"][-1]
    assert (smtp_step["step"], smtp_step["code"]) == ("smtp_auth", "auth_unavailable")
    assert "temporary" in smtp_step["hint"]
    assert SECRET not in str(wrong.to_dict()) + str(later.to_dict())


async def test_post_v1_check_reports_invalid_credentials(
    tenant_client: httpx.AsyncClient, dovecot: Dovecot, imap_server_tls: ssl.SSLContext
) -> None:
    async with scripted_imap(slow_refusal(), tls=imap_server_tls) as port:
        response = await tenant_client.post(
            "/v1/check",
            json={
                "email": "someone@example.test",
                "imap": {"host": "127.0.0.1", "port": port, "security": "ssl"},
                "password": SECRET,
                "ca_pem": open(dovecot.ca_file).read(),
            },
        )
    assert response.status_code == 200, response.text
    step = response.json()["imap"]["steps"][-1]
    assert (step["step"], step["code"]) == ("authentication", "invalid_credentials")


async def test_the_wizards_check_run_reports_invalid_credentials(
    dovecot: Dovecot, imap_server_tls: ssl.SSLContext, services: Services, tenant: TenantHandle
) -> None:
    store = CheckRunStore(services.database)
    run = await _wizard_run(imap_server_tls, MailTrust(ca_files=[dovecot.ca_file]), store, tenant.id)
    failure = run.first_failure
    assert failure is not None and (failure.step, failure.code) == ("authentication", "invalid_credentials")
    codes = {s.step: s.code for s in run.steps_of("smtp")}
    assert codes.get("smtp_auth") == "auth_unavailable", codes
    stored = await store.get(tenant.id, run.id)  # as every instance reads it
    assert stored is not None and stored.state == "failed" and SECRET not in str(stored.data)


async def _wizard_run(
    imap_server_tls: ssl.SSLContext, trust: MailTrust, store: CheckRunStore, tenant_id: str
) -> CheckRun:
    runs = CheckRuns(HostGuard.for_operator(), trust=trust, timeout=15, store=store)
    async with (
        scripted_imap(slow_refusal(), tls=imap_server_tls) as imap_port,
        scripted_smtp(temporary_smtp(), tls=imap_server_tls) as smtp_port,
    ):
        run = await runs.start(
            tenant_id,
            CheckTarget(
                "someone@example.test",
                ServerSettings("127.0.0.1", imap_port, Security.SSL),
                ServerSettings("127.0.0.1", smtp_port, Security.SSL),
                password=Secret(SECRET),
            ),
        )
        assert run.task is not None
        await run.task
    return run
