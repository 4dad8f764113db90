"""Step 4 of the wizard and the dashboard's "Test": run the connection check and show it live,
from any API instance.

The check itself is :class:`mailport.check.runner.ConnectionChecker` (DNS through the
SSRF guard, TCP, TLS, greeting, STARTTLS, authentication, SELECT; SMTP EHLO/STARTTLS/AUTH; the
troubleshooting catalog's ``code`` and ``hint`` on a failing step). The instance that starts a
run executes it as a background task and publishes it to the ``check_runs`` table
(:mod:`mailport.check.runs`): each step as the checker records it (looked at every
:data:`FLUSH_INTERVAL`, written when something changed), and a heartbeat while a step takes
long. The page polls the run (htmx, every 400 ms) and whichever instance the poll reaches renders
it from the row, for the tenant that started it only. No sticky sessions are needed.

A run whose runner stopped updating it (the process died: no update for :data:`STALE_AFTER`, or
at once when the runner was a process of this host that no longer exists) is shown as failed,
"the test stopped", with the way to run it again, and recorded so; it never spins forever.

The row holds no secret: the wizard's sealed draft (with the password) travels with the page's
poll (:mod:`mailport.web.wizard.testing`), and only its digest is kept to tie it to the run.

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
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from mailport import leases
from mailport.check.model import CheckCredentials, CheckResult, ProtocolResult, ServerTarget, StepResult
from mailport.check.runner import ConnectionChecker
from mailport.check.runs import CheckRunRecord, CheckRunStore, Kind, State
from mailport.check.steps import StepRecorder
from mailport.clock import Clock, utc_now
from mailport.crypto import Secret
from mailport.errors import MailportError, RateLimitedError
from mailport.mailboxes.models import ServerSettings
from mailport.net.guard import HostGuard
from mailport.net.trust import Certificate, MailTrust

log = logging.getLogger(__name__)

RUN_TTL = timedelta(minutes=10)  # how long a run can be looked at (from its last write)
STALE_AFTER = 30.0  # seconds without a write after which a running run's runner is taken as dead
HEARTBEAT = 5.0  # seconds: a runner writes at least this often while a step takes long
FLUSH_INTERVAL = 0.1  # seconds between looks at the run's progress (written when it changed)
PURGE_EVERY = 60.0  # seconds between two purges of expired runs by one process
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
    "pop3_capa": "Server capabilities (CAPA)",
    "pop3_stls": "Switch to TLS (STLS)",
    "pop3_auth": "Sign in",
    "pop3_uidl": "Message ids (UIDL)",
    "pop3_stat": "Count the messages",
    "token": "Get an access token",
    "profile": "Sign in to the mail API",
    "runner": "Finish the test",
}


@dataclass(frozen=True)
class CheckTarget:
    email: str
    imap: ServerSettings | None  # None: a POP3 mailbox (``pop3``)
    smtp: ServerSettings | None
    password: Secret | None = None
    token_source: TokenSource | None = None
    provider: str | None = None
    pop3: ServerSettings | None = None

    def credentials(self) -> CheckCredentials:
        if self.token_source is not None:
            return CheckCredentials(self.email, access_token=self.token_source, provider=self.provider)
        return CheckCredentials(self.email, password=self.password, provider=self.provider)


@dataclass
class Refused:
    """A check that could not start (the SSRF guard refused a host) or could not finish (its
    runner stopped): shown like a failed step."""

    step: str
    detail: str
    code: str
    hint: str
    ok: bool = False
    ms: float = 0.0
    server_said: str | None = None


def lost_step() -> Refused:
    return Refused(
        "runner",
        "The test stopped before it finished: the service instance running it is gone.",
        "check_interrupted",
        "Run the test again (nothing was saved).",
    )


@dataclass
class CheckRun:
    """A run as a page shows it: live in the runner's process, or read back from its row."""

    id: str
    tenant_id: str
    kind: Kind
    protocols: list[ProtocolResult] = field(default_factory=list)
    refused: Refused | None = None
    done: bool = False
    ok: bool = False
    lost: Refused | None = None  # the runner died before the end
    context: dict[str, Any] = field(default_factory=dict)  # what the page needs (never a secret)
    binding: str | None = None  # the digest of the sealed draft the wizard tested (not the draft)
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
        return self.lost

    @property
    def state(self) -> State:
        return "running" if not self.done else "done" if self.ok else "failed"

    def progress(self) -> tuple[int, ...]:
        """Changes whenever a step is recorded or the run ends (what the runner publishes)."""
        return (len(self.protocols), *(len(p.steps) for p in self.protocols), self.done)

    def to_data(self) -> dict[str, Any]:
        """The row's ``data``: steps (with a refused certificate's PEM), the result, the page's context."""
        return {
            "context": self.context,
            "binding": self.binding,
            "protocols": [
                {"protocol": p.protocol, "steps": [s.to_dict() for s in p.steps]} for p in self.protocols
            ],
            "refused": asdict(self.refused) if self.refused else None,
            "lost": asdict(self.lost) if self.lost else None,
            "ok": self.ok,
        }

    @classmethod
    def from_record(cls, record: CheckRunRecord) -> CheckRun:
        data = record.data
        refused, lost = data.get("refused"), data.get("lost")
        return cls(
            id=record.id,
            tenant_id=record.tenant_id,
            kind=record.kind,  # type: ignore[arg-type]
            protocols=[
                ProtocolResult(p["protocol"], [_step(s) for s in p["steps"]])
                for p in data.get("protocols", [])
            ],
            refused=Refused(**refused) if refused else None,
            lost=Refused(**lost) if lost else None,
            done=not record.running,
            ok=bool(data.get("ok")) and record.state == "done",
            context=dict(data.get("context") or {}),
            binding=data.get("binding"),
        )


def _step(body: dict[str, Any]) -> StepResult:
    """A step read back from a row (the inverse of :meth:`StepResult.to_dict`)."""
    certificate = body.get("certificate")
    return StepResult(
        step=body["step"],
        ok=body["ok"],
        ms=body["ms"],
        detail=body["detail"],
        code=body.get("code"),
        hint=body.get("hint"),
        server_said=body.get("server_said"),
        suggestions=body.get("suggestions"),
        certificate=Certificate.from_pem(certificate["pem"]) if certificate else None,
    )


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
    """Start checks (run here, published to ``check_runs``) and read any instance's runs."""

    def __init__(
        self,
        guard: HostGuard,
        *,
        trust: MailTrust,
        timeout: float,
        store: CheckRunStore,
        clock: Clock = utc_now,
        runner: str | None = None,
        budget: tuple[float, int] | None = None,
        stale_after: float = STALE_AFTER,
        heartbeat: float = HEARTBEAT,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self._guard = guard
        self._trust = trust
        self._timeout = timeout
        self.store = store
        self._clock = clock
        self.runner = runner or leases.new_holder()  # host:pid:nonce, as a lease holder
        self._stale_after = stale_after
        self._window = timedelta(minutes=budget[1] / budget[0]) if budget else timedelta(0)
        self._burst = budget[1] if budget else 0
        self._ttl = max(RUN_TTL, self._window)  # the budget counts rows: keep them as long as it looks back
        self._heartbeat = heartbeat
        self._flush_interval = flush_interval
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._purged_at: float | None = None

    async def admit(self, tenant_id: str) -> None:
        """The budget of the web's checks across every instance (``budget``: the per-minute rate
        and the burst of ``MAILPORT_CHECK_RATE_PER_MINUTE`` / ``_BURST``): at most ``burst`` runs
        of a tenant started within ``burst / rate`` minutes, counted on the rows every instance
        writes. Raises ``rate_limited`` with ``retry_after``. Two instances admitting at the same
        moment may each let one more through."""
        if not self._burst:
            return
        now = self._clock()
        started = await self.store.started_since(tenant_id, now - self._window)
        if len(started) < self._burst:
            return
        retry_after = max(1, math.ceil((started[-self._burst] + self._window - now).total_seconds()))
        raise RateLimitedError(
            f"too many connection checks; try again in {retry_after} s",
            hint=f"Wait {retry_after} s before the next check.",
            retry_after=retry_after,
        )

    async def start(
        self,
        tenant_id: str,
        target: CheckTarget,
        *,
        context: dict[str, Any] | None = None,
        binding: str | None = None,
        on_done: Callable[[CheckRun], Awaitable[None]] | None = None,
    ) -> CheckRun:
        kind: Kind = "pop3" if target.imap is None and target.pop3 is not None else "imap"
        run = CheckRun(_new_id(), tenant_id, kind, context=context or {}, binding=binding)
        checker = _LiveChecker(self._guard, run, trust=self._trust, timeout=self._timeout)

        async def work() -> None:
            try:
                result = await checker.check(
                    target.imap,
                    target.smtp,
                    target.credentials(),
                    pop3=target.pop3,
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

        return await self._launch(run, work)

    async def start_api(
        self,
        tenant_id: str,
        check: Callable[[], Awaitable[CheckResult]],
        *,
        context: dict[str, Any],
        binding: str | None = None,
    ) -> CheckRun:
        """Run ``check`` (a stored API mailbox's test, which records its outcome itself)."""
        run = CheckRun(_new_id(), tenant_id, "api", context=context, binding=binding)

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

        return await self._launch(run, work)

    async def _launch(self, run: CheckRun, work: Callable[[], Coroutine[Any, Any, None]]) -> CheckRun:
        """Write the run's row (so that any instance finds it at the first poll), then run it here."""
        await self._purge()
        now = self._clock()
        await self.store.create(
            run.id,
            tenant_id=run.tenant_id,
            kind=run.kind,
            data=run.to_data(),
            runner=self.runner,
            now=now,
            expires_at=now + self._ttl,
        )
        task = asyncio.get_running_loop().create_task(self._execute(run, work), name=f"check-run-{run.id}")
        run.task = task
        self._tasks[run.id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(run.id, None))
        return run

    async def _execute(self, run: CheckRun, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        publisher = asyncio.get_running_loop().create_task(self._publish(run))
        try:
            await work()
        except asyncio.CancelledError:  # this process stops: say so now rather than after STALE_AFTER
            run.lost = lost_step()
            raise
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
            run.done = True
            await self._finish(run)

    async def _finish(self, run: CheckRun) -> None:
        now = self._clock()
        try:
            await self.store.update(
                run.id,
                runner=self.runner,
                data=run.to_data(),
                now=now,
                state=run.state,
                expires_at=now + self._ttl,
            )
        except Exception:  # the database is away: the run is then shown as stopped
            log.exception("could not record the end of check %s", run.id)

    async def _publish(self, run: CheckRun) -> None:
        """Write the run's progress when a step was recorded, and at least every heartbeat."""
        loop = asyncio.get_running_loop()
        written, written_at = run.progress(), loop.time()
        while True:
            await asyncio.sleep(self._flush_interval)
            progress = run.progress()
            if progress == written and loop.time() - written_at < self._heartbeat:
                continue
            try:
                if not await self.store.update(
                    run.id, runner=self.runner, data=run.to_data(), now=self._clock()
                ):
                    return  # declared lost meanwhile: final, the page says so
            except Exception:
                log.warning("could not record the progress of check %s", run.id, exc_info=True)
                continue
            written, written_at = progress, loop.time()

    async def get(self, tenant_id: str, run_id: str) -> CheckRun | None:
        """The run as its row says, for ``tenant_id`` only; a running run whose runner died is
        recorded and returned as failed ("the test stopped")."""
        record = await self.store.get(tenant_id, run_id)
        if record is None:
            return None
        run = CheckRun.from_record(record)
        if record.running and self._runner_gone(record):
            run.done, run.ok, run.lost = True, False, lost_step()
            now = self._clock()
            if not await self.store.give_up(record, data=run.to_data(), now=now, expires_at=now + self._ttl):
                # its runner wrote meanwhile: it lives after all, show what it wrote
                fresh = await self.store.get(tenant_id, run_id)
                return CheckRun.from_record(fresh) if fresh is not None else None
            log.warning(
                "connection check %s: runner %s stopped updating it; shown as failed", run.id, record.runner
            )
        return run

    def _runner_gone(self, record: CheckRunRecord) -> bool:
        if record.runner == self.runner:
            return record.id not in self._tasks  # ours, but no task runs it (a restart of the graph)
        silent = (self._clock() - record.updated_at).total_seconds()
        return silent > self._stale_after or (
            record.runner is not None and leases.holder_is_dead(record.runner)
        )

    async def _purge(self) -> None:
        """Forget expired runs, at most once every :data:`PURGE_EVERY` seconds per process."""
        now = time.monotonic()
        if self._purged_at is not None and now - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = now
        try:
            await self.store.purge(now=self._clock())
        except Exception:
            log.warning("could not purge expired check runs", exc_info=True)

    async def aclose(self) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _new_id() -> str:
    return "chk_" + secrets.token_urlsafe(12)
