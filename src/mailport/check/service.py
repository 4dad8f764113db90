"""The service's connection checks: ad-hoc settings (``POST /v1/check``) and stored mailboxes
(``POST /v1/mailboxes/{id}/test``).

* :meth:`CheckService.check` — rate-limited per tenant (a check opens outbound connections
  to hosts the caller picks: unthrottled it would be a port scanner and a password-guessing
  relay), guarded (the SSRF guard vets every host), nothing stored.
* :meth:`CheckService.test_mailbox` — the stored settings with the decrypted password, or for
  OAuth2 mailboxes a token from the token manager (refreshed when due); the outcome is recorded
  on the mailbox: ``connected``, or the status the one failure rule gives
  (:func:`mailport.failures.classify_code`: ``error``, or ``reauth_required`` only when the token
  endpoint refused the grant), ``last_tested_at``, ``last_error`` and the error count. A
  mailbox read through a mail API (``gmail_api``, ``graph``) is checked through its connector
  instead (:mod:`mailport.check.api_check`), recorded the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from mailport.check.api_check import check_api
from mailport.check.model import CheckCredentials, CheckResult
from mailport.check.runner import ConnectionChecker
from mailport.check.schemas import CheckRequest
from mailport.clock import Clock
from mailport.connectors.base import Connector
from mailport.crypto import Secret
from mailport.diagnosis import infer_provider
from mailport.errors import InputError, MailportError, ReauthRequiredError
from mailport.failures import classify_code, server_said_temporary
from mailport.mailboxes.models import AuthMethod, Mailbox, MailboxStatus
from mailport.mailboxes.service import MailboxService
from mailport.net.ratelimit import TokenBucketLimiter
from mailport.oauth.tokens import TokenManager

log = logging.getLogger(__name__)


_PROVIDERS = {"google": "gmail", "microsoft": "microsoft"}


@dataclass(eq=False, repr=False)
class CheckService:
    """Connection checks for the API (see the module docstring)."""

    checker: ConnectionChecker
    _: KW_ONLY
    limiter: TokenBucketLimiter
    mailboxes: MailboxService
    tokens: TokenManager | None
    clock: Clock
    # the mailbox's connector, built as the watchers build it (Services.connector); set by the
    # composition root once the service graph exists
    connectors: Callable[[Mailbox], Connector] | None = None

    async def check(self, tenant_id: str, request: CheckRequest) -> CheckResult:
        """``POST /v1/check``: raises ``rate_limited`` (with ``retry_after``) or ``host_not_allowed``."""
        self.limiter.check(tenant_id)
        return await self.checker.check(
            request.imap.target() if request.imap else None,
            request.smtp.target() if request.smtp else None,
            request.credentials(),
            trust=self.checker.trust.adding(ca_pem=request.ca_pem),
            pop3=request.pop3.target() if request.pop3 else None,
        )

    async def test_mailbox(self, tenant_id: str, mailbox_id: str) -> CheckResult:
        """Test a stored mailbox and record the outcome on it.

        For OAuth2, a token the server refuses is refreshed once (``force_refresh``) and the check
        runs again: only when the fresh token is refused too, or the refresh token is dead, does
        the mailbox need to be connected again. A provider that cannot be reached, or a server
        that could not check the token (``[UNAVAILABLE]``), leaves it in ``error`` (never
        ``reauth_required``)."""
        mailbox = await self.mailboxes.get(tenant_id, mailbox_id)
        pop3 = mailbox.connector == "pop3"
        if mailbox.imap is None and self.connectors is not None and mailbox.connector != "imap" and not pop3:
            return await self._test_api(tenant_id, mailbox)
        if pop3:
            mailbox.require_pop3()  # the test signs in over POP3: refused clearly without a server
        else:
            mailbox.require_imap()  # the test signs in over IMAP: refused clearly without a server
        used: list[Secret] = []
        credentials = self._credentials(mailbox, used)
        try:
            result = await self._run(mailbox, credentials)
            if self._token_rejected(mailbox, result) and self.tokens is not None and used:
                refreshed = False
                try:
                    await self.tokens.force_refresh(mailbox.id, rejected=used[-1])
                    refreshed = True
                except ReauthRequiredError:
                    refreshed = True  # the re-run reports reauth_required from the token manager
                except MailportError as exc:  # provider unreachable, no app configured: not the user's doing
                    log.warning("mailbox %s: refreshing its token failed: %s", mailbox.id, exc.code)
                if refreshed:
                    result = await self._run(mailbox, credentials)
        except InputError as exc:  # host_not_allowed: the stored host is refused
            await self.mailboxes.record_health(
                tenant_id,
                mailbox.id,
                status=MailboxStatus.ERROR,
                error=f"[{exc.code}] {exc.message}",
                at=self.clock(),
            )
            raise
        status = self._status(result)
        await self.mailboxes.record_health(
            tenant_id, mailbox.id, status=status, error=result.summary(), at=self.clock()
        )
        log.info("mailbox %s tested: %s", mailbox.id, status.value)
        return result

    async def _test_api(self, tenant_id: str, mailbox: Mailbox) -> CheckResult:
        """A mailbox read through a mail API: its token, then its connector's profile call."""
        assert self.connectors is not None
        if self.tokens is None or mailbox.oauth is None:
            raise InputError(
                f"mailbox {mailbox.id} uses the {mailbox.connector} connector but has no token",
                hint="Connect the mailbox with its provider first (POST /v1/oauth/{provider}/authorize "
                "with its mailbox_id).",
            )
        tokens, mailbox_id = self.tokens, mailbox.id

        async def token() -> Secret:
            return await tokens.get_access_token(mailbox_id)

        result = await check_api(
            mailbox.connector, self.connectors(mailbox), token, timeout=self.checker.step_timeout
        )
        status = self._status(result)
        await self.mailboxes.record_health(
            tenant_id, mailbox.id, status=status, error=result.summary(), at=self.clock()
        )
        log.info("mailbox %s tested (%s): %s", mailbox.id, mailbox.connector, status.value)
        return result

    async def _run(self, mailbox: Mailbox, credentials: CheckCredentials) -> CheckResult:
        if mailbox.connector == "pop3":
            return await self.checker.check(None, mailbox.smtp, credentials, pop3=mailbox.require_pop3())
        return await self.checker.check(
            mailbox.require_imap(),
            mailbox.smtp,
            credentials,
        )

    @staticmethod
    def _token_rejected(mailbox: Mailbox, result: CheckResult) -> bool:
        """The server refused the token itself (not "could not check it now")."""
        found = result.failure
        return (
            mailbox.auth_method is AuthMethod.OAUTH2
            and found is not None
            and found[1].code == "oauth_token_rejected"
            and not server_said_temporary(found[1].server_said)
        )

    def _credentials(self, mailbox: Mailbox, used: list[Secret]) -> CheckCredentials:
        provider = _PROVIDERS.get(mailbox.oauth.provider, mailbox.oauth.provider) if mailbox.oauth else None
        if mailbox.auth_method is AuthMethod.OAUTH2:
            tokens = self.tokens
            if tokens is None or mailbox.oauth is None:
                raise InputError(
                    f"mailbox {mailbox.id} uses OAuth2 but has no token",
                    hint="Connect the mailbox with its provider first (POST /v1/oauth/{provider}/authorize).",
                )
            mailbox_id = mailbox.id

            async def token() -> Secret:
                assert tokens is not None
                secret = await tokens.get_access_token(mailbox_id)
                used.append(secret)
                return secret

            return CheckCredentials(mailbox.email, access_token=token, provider=provider)
        if mailbox.password is None:
            raise InputError(
                f"mailbox {mailbox.id} has no password", hint="Set one with PATCH /v1/mailboxes/{id}."
            )
        provider = infer_provider(mailbox.provider_id) if mailbox.provider_id else None
        return CheckCredentials(mailbox.email, password=mailbox.password, provider=provider)

    @staticmethod
    def _status(result: CheckResult) -> MailboxStatus:
        if result.ok:
            return MailboxStatus.CONNECTED
        found = result.failure
        if found is None:
            return MailboxStatus.ERROR
        return classify_code(found[1].code, server_said=found[1].server_said).status
