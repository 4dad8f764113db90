"""Step 4 of the wizard and the dashboard's "Test": run the connection check and show it live.

The check itself is :class:`mailport.check.runner.ConnectionChecker` (DNS through the
SSRF guard, TCP, TLS, greeting, STARTTLS, authentication, SELECT; SMTP EHLO/STARTTLS/AUTH; the
troubleshooting catalog's ``code`` and ``hint`` on a failing step). It runs as a background task
of this process; the page polls the run (htmx, every 400 ms) and each step appears as soon as
the checker records it, with ✓/✗ and its time. Runs are kept in memory for ten minutes, bound to
the tenant that started them (``mailport serve`` is one process; a run is a page's business only).

The checker fills each protocol's :class:`~mailport.check.model.ProtocolResult` as it goes;
:class:`_LiveChecker` hands those objects to the run when the check creates them, which is what
makes the steps visible before the whole check has finished. A mailbox read through a mail API
(``gmail_api``, ``graph``) is checked by :meth:`CheckRuns.start_api` with the service's own
mailbox test (:mod:`mailport.check.api_check`: two quick steps, shown when done).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from mailport.check.model import CheckCredentials, CheckResult, ProtocolResult, ServerTarget
from mailport.check.runner import ConnectionChecker
from mailport.check.steps import StepRecorder
from mailport.crypto import Secret
from mailport.errors import MailportError
from mailport.mailboxes.models import ServerSettings
from mailport.net.guard import HostGuard
from mailport.net.trust import Certificate, MailTrust

log = logging.getLogger(__name__)

RUN_TTL = 600.0
# Certificate failures a person can resolve by trusting the certificate for this mailbox (a wrong
# host name or an expired certificate have better fixes: the right host, a renewal).
TRUSTABLE = frozenset({"certificate_self_signed", "certificate_untrusted", "certificate_changed"})
TokenSource = Callable[[], Awaitable[Secret]]

LABELS = {
    "dns": "Find the server",
    "tcp_connect": "Connect",
    "tls_handshake": "Secure the connection (TLS)",
    "greeting": "Server greeting",
    "starttls": "Switch to TLS (STARTTLS)",
    "authentication": "Sign in",
    "select": "Open the inbox",
    "smtp_ehlo": "Server greeting (EHLO)",
    "smtp_starttls": "Switch to TLS (STARTTLS)",
    "smtp_auth": "Sign in for sending",
    "token": "Get an access token",
    "profile": "Sign in to the mail API",
}


@dataclass(frozen=True)
class CheckTarget:
    email: str
    imap: ServerSettings
    smtp: ServerSettings | None
    password: Secret | None = None
    token_source: TokenSource | None = None
    provider: str | None = None

    def credentials(self) -> CheckCredentials:
        if self.token_source is not None:
            return CheckCredentials(self.email, access_token=self.token_source, provider=self.provider)
        return CheckCredentials(self.email, password=self.password, provider=self.provider)


@dataclass
class Refused:
    """A check that could not start (the SSRF guard refused a host): shown like a failed step."""

    step: str
    detail: str
    code: str
    hint: str
    ok: bool = False
    ms: float = 0.0
    server_said: str | None = None


@dataclass
class CheckRun:
    id: str
    tenant_id: str
    started: float
    protocols: list[ProtocolResult] = field(default_factory=list)
    refused: Refused | None = None
    done: bool = False
    ok: bool = False
    context: dict[str, Any] = field(default_factory=dict)  # what the page needs afterwards
    task: asyncio.Task[None] | None = None

    def steps_of(self, protocol: str) -> list[Any]:
        for result in self.protocols:
            if result.protocol == protocol:
                return list(result.steps)
        return []

    @property
    def refused_certificates(self) -> list[tuple[Certificate, list[str], str]]:
        """Certificates a person may choose to trust (self-signed, unknown CA, or changed since
        trusted), each with the protocols that refused it and why (the failing step's code)."""
        found: dict[str, tuple[Certificate, list[str], str]] = {}
        for result in self.protocols:
            step = result.failure
            if step is not None and step.certificate is not None and step.code in TRUSTABLE:
                entry = found.setdefault(step.certificate.sha256, (step.certificate, [], step.code))
                entry[1].append(result.protocol)
        return list(found.values())

    @property
    def first_failure(self) -> Any:
        if self.refused is not None:
            return self.refused
        for result in self.protocols:
            if result.failure is not None:
                return result.failure
        return None


class _LiveChecker(ConnectionChecker):
    """The connection checker, publishing each protocol's result object to one run."""

    def __init__(self, guard: HostGuard, run: CheckRun, *, trust: MailTrust, timeout: float) -> None:
        super().__init__(guard, trust=trust, timeout=timeout)
        self._run = run

    def _recorder(self, protocol: str, target: ServerTarget, credentials: CheckCredentials) -> StepRecorder:
        recorder = super()._recorder(protocol, target, credentials)
        self._run.protocols.append(recorder.result)
        return recorder


class CheckRuns:
    """The running and recent checks of this process."""

    def __init__(self, guard: HostGuard, *, trust: MailTrust, timeout: float) -> None:
        self._guard = guard
        self._trust = trust
        self._timeout = timeout
        self._runs: dict[str, CheckRun] = {}

    def start(
        self,
        tenant_id: str,
        target: CheckTarget,
        *,
        context: dict[str, Any] | None = None,
        on_done: Callable[[CheckRun], Awaitable[None]] | None = None,
    ) -> CheckRun:
        self._forget_old()
        run = CheckRun(secrets.token_urlsafe(12), tenant_id, time.monotonic(), context=context or {})
        checker = _LiveChecker(self._guard, run, trust=self._trust, timeout=self._timeout)

        async def work() -> None:
            try:
                result = await checker.check(
                    target.imap,
                    target.smtp,
                    target.credentials(),
                )
                run.ok = result.ok
            except MailportError as exc:  # host_not_allowed, an unusable CA
                run.refused = Refused("dns", exc.message, exc.code, exc.hint)
                run.ok = False
            except Exception:
                log.exception("connection check %s failed unexpectedly", run.id)
                run.refused = Refused("dns", "the check failed unexpectedly", "internal_error", "Try again.")
                run.ok = False
            try:
                if on_done is not None:
                    await on_done(run)
            except Exception:
                log.exception("recording the result of check %s failed", run.id)
            finally:
                run.done = True

        return self._launch(run, work)

    def start_api(
        self, tenant_id: str, check: Callable[[], Awaitable[CheckResult]], *, context: dict[str, Any]
    ) -> CheckRun:
        """Run ``check`` (a stored API mailbox's test, which records its outcome itself)."""
        self._forget_old()
        run = CheckRun(secrets.token_urlsafe(12), tenant_id, time.monotonic(), context=context)

        async def work() -> None:
            try:
                result = await check()
                run.protocols = [p for p in (result.api, result.imap, result.smtp) if p is not None]
                run.ok = result.ok
            except MailportError as exc:  # no token at all, the mailbox gone
                run.refused = Refused("token", exc.message, exc.code, exc.hint)
            except Exception:
                log.exception("connection check %s failed unexpectedly", run.id)
                run.refused = Refused(
                    "token", "the check failed unexpectedly", "internal_error", "Try again."
                )
            finally:
                run.done = True

        return self._launch(run, work)

    def _launch(self, run: CheckRun, work: Callable[[], Coroutine[Any, Any, None]]) -> CheckRun:
        self._runs[run.id] = run
        run.task = asyncio.get_running_loop().create_task(work())
        return run

    def get(self, tenant_id: str, run_id: str) -> CheckRun | None:
        run = self._runs.get(run_id)
        return run if run is not None and run.tenant_id == tenant_id else None

    def _forget_old(self) -> None:
        now = time.monotonic()
        for run_id, run in list(self._runs.items()):
            if run.done and now - run.started > RUN_TTL:
                del self._runs[run_id]

    async def aclose(self) -> None:
        tasks = [r.task for r in self._runs.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
