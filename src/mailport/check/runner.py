"""Run a connection check: DNS through SELECT INBOX for IMAP, DNS through UIDL and STAT for
POP3 (:mod:`.pop3_check`), DNS through AUTH for SMTP.

:class:`ConnectionChecker` holds what every check shares — the SSRF guard and the deadlines —
and :meth:`ConnectionChecker.check` runs one: first both DNS steps (the guard resolves and vets
each host once; a refused host raises :class:`~mailport.errors.HostNotAllowedError` before
anything is connected), then IMAP (or POP3) and SMTP concurrently, each step under its own deadline and
all under the overall one (``MAILPORT_CHECK_TIMEOUT``, 20 s by default). Every other failure is
a failing step in the answer, never an exception.

TLS trusts what every mail connection trusts (:class:`mailport.net.trust.MailTrust`: the system
CAs plus ``MAILPORT_MAIL_CA_FILE``, and a server's pinned certificate, ``ServerTarget.trusted_certificate``).

Library use::

    checker = ConnectionChecker(HostGuard.for_operator(), trust=MailTrust(), timeout=20)
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
from mailport.check.pop3_check import check_pop3
from mailport.check.smtp_check import check_smtp
from mailport.check.steps import Clock, Deadline, StepRecorder
from mailport.diagnosis import infer_provider
from mailport.errors import InputError, MailportError
from mailport.net.guard import HostGuard, VettedHost
from mailport.net.trust import MailTrust

DEFAULT_TIMEOUT = 20.0
DEFAULT_STEP_TIMEOUT = 10.0


class ConnectionChecker:
    """Checks IMAP/SMTP settings and credentials step by step (see the module docstring)."""

    def __init__(
        self,
        guard: HostGuard,
        *,
        trust: MailTrust | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        step_timeout: float | None = None,
        clock: Clock = time.perf_counter,
    ) -> None:
        self.guard = guard
        self.trust = trust or MailTrust()
        self.timeout = timeout
        self.step_timeout = step_timeout if step_timeout is not None else min(DEFAULT_STEP_TIMEOUT, timeout)
        self._clock = clock

    async def check(
        self,
        imap: ServerTarget | None,
        smtp: ServerTarget | None,
        credentials: CheckCredentials,
        *,
        ca_file: str | None = None,
        ca_pem: str | None = None,
        trust: MailTrust | None = None,
        smtp_trust: MailTrust | None = None,
        pop3: ServerTarget | None = None,
    ) -> CheckResult:
        """Check ``imap`` (or ``pop3``) and ``smtp`` (each when given) with ``credentials``.

        ``ca_file`` / ``ca_pem``: CAs to trust for both servers in addition to the checker's own
        (system CAs and ``MAILPORT_MAIL_CA_FILE``). ``trust`` replaces the checker's trust for this
        check, ``smtp_trust`` for SMTP only (default: ``trust``). Raises only :class:`HostNotAllowedError`
        (the guard refused a host) and :class:`~mailport.errors.InputError`; everything else is in
        the answer.
        """
        if imap is None and smtp is None and pop3 is None:
            raise InputError("nothing to check: give IMAP (or POP3) or SMTP settings (or both)")
        imap_trust = (trust or self.trust).adding(ca_file=ca_file, ca_pem=ca_pem)
        smtp_trust = smtp_trust.adding(ca_file=ca_file, ca_pem=ca_pem) if smtp_trust else imap_trust
        deadline = Deadline(self.timeout, self.step_timeout, clock=self._clock)
        handshakes: list[float] = []
        recorders = {
            protocol: (target, self._recorder(protocol, target, credentials))
            for protocol, target in (("imap", imap), ("pop3", pop3), ("smtp", smtp))
            if target is not None
        }
        found = await asyncio.gather(
            *(self._dns(rec, target, deadline, f"{p}.host") for p, (target, rec) in recorders.items()),
            return_exceptions=True,
        )
        outcomes = dict(zip(recorders, found, strict=True))
        for outcome in outcomes.values():
            if isinstance(outcome, InputError):
                raise outcome
        for outcome in outcomes.values():
            if isinstance(outcome, BaseException):
                raise outcome
        imap_rec = recorders["imap"][1] if "imap" in recorders else None
        smtp_rec = recorders["smtp"][1] if "smtp" in recorders else None

        runs = []
        imap_vetted = outcomes.get("imap")
        if imap is not None and imap_rec is not None and isinstance(imap_vetted, VettedHost):
            context = imap_trust.context(imap.trusted_certificate)
            runs.append(
                check_imap(imap_rec, imap_vetted, imap, credentials, context=context, deadline=deadline)
            )
        pop3_vetted = outcomes.get("pop3")
        if pop3 is not None and isinstance(pop3_vetted, VettedHost):
            context = imap_trust.context(pop3.trusted_certificate)  # the incoming server's trust
            pop3_rec = recorders["pop3"][1]
            runs.append(
                check_pop3(pop3_rec, pop3_vetted, pop3, credentials, context=context, deadline=deadline)
            )
        smtp_vetted = outcomes.get("smtp")
        if smtp is not None and smtp_rec is not None and isinstance(smtp_vetted, VettedHost):
            clock = self._clock
            context = smtp_trust.context(
                smtp.trusted_certificate, on_handshake=lambda: handshakes.append(clock())
            )
            runs.append(
                check_smtp(
                    smtp_rec,
                    smtp_vetted,
                    smtp,
                    credentials,
                    context=context,
                    handshakes=handshakes,
                    deadline=deadline,
                )
            )
        await asyncio.gather(*runs)
        return CheckResult(
            imap=imap_rec.result if imap_rec is not None else None,
            smtp=smtp_rec.result if smtp_rec is not None else None,
            pop3=recorders["pop3"][1].result if "pop3" in recorders else None,
        )

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
