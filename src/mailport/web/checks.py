"""Step 4 of the wizard and the dashboard's "Test": run a connection check and show it live.

A check runs as a background task of this process; the page polls its state (htmx, every
400 ms) and each step appears as it finishes, with ✓/✗, its time and, on failure, the
troubleshooting ``code`` and ``hint`` from :func:`mailport.check.troubleshoot.diagnose`.
Runs are kept in memory for ten minutes and bound to the tenant that started them.

The steps themselves (:func:`run_check`) use :mod:`mailport.imap` and :mod:`mailport.smtp`
directly. The full connection check of issue 6 (``mailport.check``, ``POST /v1/check``) was not
merged when this was written; when it is, :func:`run_check` is the one place to switch to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from mailport.check.troubleshoot import Failure, diagnose
from mailport.crypto import Secret
from mailport.errors import MailportError
from mailport.imap import ImapClient
from mailport.mailboxes.models import Security, ServerSettings
from mailport.net.guard import HostGuard
from mailport.sasl import Credentials, OAuth2Auth, PasswordAuth
from mailport.smtp.client import SmtpClient

log = logging.getLogger(__name__)

RUN_TTL = 600.0
IMAP_SECURITY = {Security.SSL: "tls", Security.STARTTLS: "starttls", Security.NONE: "plain"}
SMTP_SECURITY = IMAP_SECURITY

TokenSource = Callable[[], Awaitable[Secret]]


@dataclass
class StepResult:
    protocol: Literal["imap", "smtp"]
    step: str
    label: str
    ok: bool | None = None  # None: running
    ms: int | None = None
    detail: str = ""
    code: str | None = None
    hint: str | None = None
    server_said: str | None = None


@dataclass(frozen=True)
class CheckTarget:
    email: str
    imap: ServerSettings
    smtp: ServerSettings | None
    password: Secret | None = None
    token_source: TokenSource | None = None
    provider: str | None = None

    def credentials(self, username: str) -> Credentials:
        if self.token_source is not None:
            return OAuth2Auth(username, self.token_source)
        assert self.password is not None
        return PasswordAuth(username, self.password)


@dataclass
class CheckRun:
    id: str
    tenant_id: str
    started: float
    steps: list[StepResult] = field(default_factory=list)
    done: bool = False
    ok: bool = False
    context: dict[str, Any] = field(default_factory=dict)  # what the page needs afterwards
    task: asyncio.Task[None] | None = None

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps if s.ok is False]


class _Steps:
    """Times one step at a time and records it on the run (visible to the poller at once)."""

    def __init__(self, run: CheckRun, target: CheckTarget, protocol: Literal["imap", "smtp"]) -> None:
        self.run = run
        self.target = target
        self.protocol = protocol
        self.server = target.imap if protocol == "imap" else target.smtp

    async def step(self, name: str, label: str, work: Awaitable[str]) -> bool:
        result = StepResult(self.protocol, name, label)
        self.run.steps.append(result)
        started = time.perf_counter()
        try:
            result.detail = await work
            result.ok = True
        except Exception as exc:  # translated below into code + hint; never re-raised
            result.ok = False
            self._explain(result, name, exc)
        finally:
            result.ms = int((time.perf_counter() - started) * 1000)
        return bool(result.ok)

    def _explain(self, result: StepResult, name: str, exc: Exception) -> None:
        server = self.server
        assert server is not None
        try:
            found = diagnose(
                Failure(
                    step=name,  # type: ignore[arg-type]
                    protocol=self.protocol,
                    provider=self.target.provider,
                    host=server.host,
                    port=server.port,
                    security=server.security.value,
                    auth="oauth2" if self.target.token_source else "password",
                    error=exc,
                )
            )
            result.detail, result.code, result.hint = found.detail, found.code, found.hint
            result.server_said = found.server_said
        except Exception:  # the catalog must never hide the failure itself
            log.warning("troubleshooting failed for %s", type(exc).__name__)
            if isinstance(exc, MailportError):
                result.detail, result.code, result.hint = exc.message, exc.code, exc.hint
            else:
                result.detail, result.code = type(exc).__name__, "connect_failed"


async def _check_imap(run: CheckRun, target: CheckTarget, guard: HostGuard, timeout: float) -> None:
    steps = _Steps(run, target, "imap")
    server = target.imap
    username = server.username or target.email

    async def vet() -> str:
        vetted = await guard.vet(server.host, server.port, field="imap.host")
        return f"{server.host} → {', '.join(str(a) for a in vetted.addresses)}"

    if not await steps.step("dns", "Find the IMAP server", vet()):
        return
    client = ImapClient(
        server.host,
        server.port,
        security=IMAP_SECURITY[server.security],
        allow_plaintext=server.security is Security.NONE,
        allow_plaintext_auth=server.security is Security.NONE,
        connect_timeout=timeout,
        command_timeout=timeout,
    )
    try:

        async def connect() -> str:
            greeting = await client.connect()
            return f"{server.host}:{server.port} ({server.security.value}) — {greeting.text[:80]}"

        if not await steps.step("tcp_connect", "Connect securely", connect()):
            return

        async def login() -> str:
            await client.authenticate(target.credentials(username))
            return f"signed in as {username}"

        if not await steps.step("authentication", "Sign in", login()):
            return

        async def select() -> str:
            info = await client.select("INBOX")
            return f"INBOX: {info.exists} messages"

        await steps.step("select", "Open the inbox", select())
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.logout(), 3)


async def _check_smtp(run: CheckRun, target: CheckTarget, guard: HostGuard, timeout: float) -> None:
    server = target.smtp
    if server is None:
        return
    steps = _Steps(run, target, "smtp")
    username = server.username or target.email

    async def vet() -> str:
        vetted = await guard.vet(server.host, server.port, field="smtp.host")
        return f"{server.host} → {', '.join(str(a) for a in vetted.addresses)}"

    if not await steps.step("dns", "Find the SMTP server", vet()):
        return
    client = SmtpClient(
        server.host,
        server.port,
        security=SMTP_SECURITY[server.security],
        allow_plaintext=server.security is Security.NONE,
        allow_plaintext_auth=server.security is Security.NONE,
        timeout=timeout,
    )
    try:

        async def connect() -> str:
            await client.connect()
            return f"{server.host}:{server.port} ({server.security.value})"

        if not await steps.step("smtp_ehlo", "Connect securely", connect()):
            return

        async def auth() -> str:
            await client.authenticate(target.credentials(username))
            return f"signed in as {username}"

        await steps.step("smtp_auth", "Sign in for sending", auth())
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.quit(), 3)


async def run_check(run: CheckRun, target: CheckTarget, *, guard: HostGuard, timeout: float) -> None:
    """IMAP and SMTP checked concurrently; each step lands on ``run.steps`` as it finishes."""
    await asyncio.gather(_check_imap(run, target, guard, timeout), _check_smtp(run, target, guard, timeout))
    run.ok = bool(run.steps) and all(s.ok for s in run.steps)


class CheckRuns:
    """The running and recent checks of this process."""

    def __init__(self, guard: HostGuard, *, timeout: float) -> None:
        self._guard = guard
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

        async def work() -> None:
            try:
                await run_check(run, target, guard=self._guard, timeout=self._timeout)
                if on_done is not None:
                    await on_done(run)
            except Exception:
                log.exception("connection check %s failed unexpectedly", run.id)
                run.ok = False
            finally:
                run.done = True

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
