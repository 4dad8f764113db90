"""Run a connection check: DNS through SELECT INBOX for IMAP, DNS through AUTH for SMTP.

:class:`ConnectionChecker` holds what every check shares — the SSRF guard and the deadlines —
and :meth:`ConnectionChecker.check` runs one: first both DNS steps (the guard resolves and vets
each host once; a refused host raises :class:`~mailport.errors.HostNotAllowedError` before
anything is connected), then IMAP and SMTP concurrently, each step under its own deadline and
all under the overall one (``MAILPORT_CHECK_TIMEOUT``, 20 s by default). Every other failure is
a failing step in the answer, never an exception.

Library use::

    checker = ConnectionChecker(HostGuard.for_operator(), timeout=20)
    result = await checker.check(
        ServerTarget("imap.example.com", 993, "ssl"),
        ServerTarget("smtp.example.com", 465, "ssl"),
        CheckCredentials("me@example.com", password=Secret("app-password")),
    )
    print(result.to_dict())
"""

from __future__ import annotations

import asyncio
import time

from mailport.check.imap_check import check_imap
from mailport.check.model import CheckCredentials, CheckResult, ProtocolResult, ServerTarget
from mailport.check.smtp_check import check_smtp
from mailport.check.steps import Clock, Deadline, StepRecorder
from mailport.check.tls import check_context, timed_context
from mailport.check.troubleshoot import infer_provider
from mailport.errors import InputError, MailportError
from mailport.net.guard import HostGuard, VettedHost

DEFAULT_TIMEOUT = 20.0
DEFAULT_STEP_TIMEOUT = 10.0


class ConnectionChecker:
    """Checks IMAP/SMTP settings and credentials step by step (see the module docstring)."""

    def __init__(
        self,
        guard: HostGuard,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        step_timeout: float | None = None,
        clock: Clock = time.perf_counter,
    ) -> None:
        self.guard = guard
        self.timeout = timeout
        self.step_timeout = step_timeout if step_timeout is not None else min(DEFAULT_STEP_TIMEOUT, timeout)
        self._clock = clock

    async def check(
        self,
        imap: ServerTarget,
        smtp: ServerTarget | None,
        credentials: CheckCredentials,
        *,
        ca_file: str | None = None,
        ca_pem: str | None = None,
    ) -> CheckResult:
        """Check ``imap`` (and ``smtp`` when given) with ``credentials``.

        ``ca_file`` / ``ca_pem``: trust only this CA (a private server); the system CAs otherwise.
        Raises only :class:`HostNotAllowedError` (the guard refused a host) and
        :class:`~mailport.errors.InputError` (an unusable CA); everything else is in the answer.
        """
        deadline = Deadline(self.timeout, self.step_timeout, clock=self._clock)
        imap_context = check_context(ca_file=ca_file, ca_pem=ca_pem)
        smtp_context, handshakes = timed_context(ca_file=ca_file, ca_pem=ca_pem, clock=self._clock)
        imap_rec = self._recorder("imap", imap, credentials)
        smtp_rec = self._recorder("smtp", smtp, credentials) if smtp is not None else None

        lookups = [self._dns(imap_rec, imap, deadline, "imap.host")]
        if smtp is not None and smtp_rec is not None:
            lookups.append(self._dns(smtp_rec, smtp, deadline, "smtp.host"))
        vetted = await asyncio.gather(*lookups, return_exceptions=True)
        for outcome in vetted:
            if isinstance(outcome, InputError):
                raise outcome
        for outcome in vetted:
            if isinstance(outcome, BaseException):
                raise outcome

        runs = []
        imap_vetted = vetted[0]
        if isinstance(imap_vetted, VettedHost):
            runs.append(
                check_imap(imap_rec, imap_vetted, imap, credentials, context=imap_context, deadline=deadline)
            )
        if smtp is not None and smtp_rec is not None and isinstance(vetted[1], VettedHost):
            runs.append(
                check_smtp(
                    smtp_rec,
                    vetted[1],
                    smtp,
                    credentials,
                    context=smtp_context,
                    handshakes=handshakes,
                    deadline=deadline,
                )
            )
        await asyncio.gather(*runs)
        return CheckResult(imap=imap_rec.result, smtp=smtp_rec.result if smtp_rec is not None else None)

    def _recorder(self, protocol: str, target: ServerTarget, credentials: CheckCredentials) -> StepRecorder:
        return StepRecorder(
            ProtocolResult(protocol),  # type: ignore[arg-type]
            host=target.host,
            port=target.port,
            security=target.security,
            auth=credentials.kind,
            provider=credentials.provider or infer_provider(target.host),
            clock=self._clock,
        )

    async def _dns(
        self, rec: StepRecorder, target: ServerTarget, deadline: Deadline, field: str
    ) -> VettedHost | None:
        started = rec.start()
        try:
            async with asyncio.timeout(deadline.for_step()):
                vetted = await self.guard.vet(target.host, target.port, field=field)
        except InputError:  # host_not_allowed, or not a host name at all
            raise
        except (OSError, TimeoutError, MailportError) as exc:
            rec.fail("dns", started, error=exc)
            return None
        addresses = ", ".join(str(a) for a in vetted.addresses)
        shown = "" if vetted.is_ip_literal else f"{vetted.server_hostname} → "
        rec.ok("dns", started, f"{shown}{addresses}")
        return vetted
