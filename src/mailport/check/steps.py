"""Timing, deadlines and diagnosis shared by the IMAP and SMTP checks.

Each step runs under its own deadline (``step_timeout``) and never past the check's overall
deadline; a step's ``ms`` is measured with the monotonic performance counter around the real
I/O. A failing step is turned into the answer's fields by the troubleshooting catalog
(:func:`mailport.diagnosis.diagnose`), with the server's words rebuilt from the
exception the IMAP/SMTP client raised (status and response code for IMAP, reply and enhanced
code for SMTP).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailport import sasl
from mailport.check.model import CheckCredentials, ProtocolResult, StepResult
from mailport.check.tls import hostname_mismatch, verification_error
from mailport.crypto import Secret
from mailport.diagnosis import Failure, ServerReply, Step, diagnose
from mailport.errors import ConnectError, ConnectionLostError, MailportError, OAuthError
from mailport.imap.models import TLSInfo
from mailport.net.guard import VettedHost
from mailport.net.probe import PlaintextProbe, certificate_names, probe_plaintext
from mailport.net.trust import Certificate, PinMismatch
from mailport.servers import Security

Clock = Callable[[], float]


@dataclass
class Deadline:
    """The overall deadline of one check, and the per-step cap."""

    total: float
    step: float
    clock: Clock = time.perf_counter
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def remaining(self) -> float:
        return max(0.0, self.total - (self.clock() - self.started))

    def for_step(self, cap: float | None = None) -> float:
        """Seconds the next step may take (at least 1 ms so an expired deadline fails at once)."""
        limit = min(self.step, self.remaining())
        if cap is not None:
            limit = min(limit, cap)
        return max(0.001, limit)


def reply_of(protocol: str, error: BaseException | None) -> ServerReply | None:
    """The server's words carried by a mailport client error, as the catalog reads them."""
    if not isinstance(error, MailportError) or not error.server_said:
        return None
    said = error.server_said
    if protocol == "pop3":
        return ServerReply.pop3(said)
    if protocol == "imap":
        status = error.details.get("status")
        if status is None:
            status = "BYE" if isinstance(error, ConnectionLostError | ConnectError) else "NO"
        return ServerReply.imap(f"{status} {said}")
    code = getattr(error, "smtp_code", None) or error.details.get("smtp_code")
    if isinstance(code, int):
        return ServerReply.smtp(code, said)
    return None


@dataclass
class StepRecorder:
    """Appends timed steps to one protocol's result and diagnoses failures."""

    result: ProtocolResult
    host: str
    port: int
    security: str
    auth: str
    provider: str | None
    clock: Clock = time.perf_counter

    def start(self) -> float:
        return self.clock()

    def _ms(self, started: float) -> float:
        return round((self.clock() - started) * 1000, 1)

    def ok(self, step: str, started: float, detail: str, *, ended: float | None = None) -> None:
        ms = self._ms(started) if ended is None else round((ended - started) * 1000, 1)
        self.result.steps.append(StepResult(step=step, ok=True, ms=ms, detail=detail))

    def fail(
        self,
        step: Step,
        started: float,
        *,
        error: BaseException | None = None,
        reply: ServerReply | None = None,
        received: bytes | None = None,
        probe: bytes | None = None,
        peer_names: Sequence[str] = (),
        certificate: bytes | None = None,
        host: str | None = None,
        ended: float | None = None,
    ) -> StepResult:
        """Record a failing step; ``ended`` is when the step itself failed (evidence gathered
        afterwards does not count towards its ``ms``). ``certificate``: the one the server
        presented (DER), when the client refused it."""
        ms = self._ms(started) if ended is None else round((ended - started) * 1000, 1)
        protocol = self.result.protocol
        assert protocol != "api"  # the API check (check.api_check) records its own steps
        failure = Failure(
            step=step,
            protocol=protocol,
            provider=self.provider,
            host=host or self.host,
            port=self.port,
            security=self.security,  # type: ignore[arg-type]
            auth=self.auth,
            reply=reply or reply_of(self.result.protocol, error),
            error=error,
            received=received,
            probe=probe,
            peer_names=peer_names,
        )
        found = diagnose(failure)
        fields = found.step_fields()
        result = StepResult(
            step=step,
            ok=False,
            ms=ms,
            detail=fields["detail"],
            code=fields["code"],
            hint=fields["hint"],
            server_said=fields.get("server_said"),
            suggestions=fields.get("suggestions"),
            certificate=Certificate(certificate) if certificate else None,
        )
        self.result.steps.append(result)
        return result

    async def fail_tls(
        self,
        step: Step,
        started: float,
        error: BaseException,
        peer_certificate: Callable[[], Awaitable[bytes | None]],
        *,
        ended: float,
    ) -> None:
        """A failed TLS step: when the certificate was refused, look at it (after the step
        ended) — its names for a hostname mismatch, the certificate itself to show or pin."""
        refused = verification_error(error)
        der: bytes | None = None
        if isinstance(refused, PinMismatch):
            der = refused.presented.der if refused.presented else None
        elif refused is not None:
            der = await peer_certificate()
        names = certificate_names(der) if der and hostname_mismatch(error) else ()
        self.fail(step, started, error=error, peer_names=names, certificate=der, ended=ended)

    def fail_with(self, step: str, started: float, error: MailportError) -> StepResult:
        """A failure that is already ours and specific (e.g. ``reauth_required`` from the token
        manager): its own code, message and hint, no catalog lookup."""
        result = StepResult(
            step=step,
            ok=False,
            ms=self._ms(started),
            detail=error.message,
            code=error.code,
            hint=error.hint,
            server_said=error.server_said,
        )
        self.result.steps.append(result)
        return result


async def sasl_credentials(
    credentials: CheckCredentials, username: str, mechanism: str, deadline: Deadline
) -> sasl.Credentials:
    """The client credentials for ``mechanism`` (a token source is asked now, under the deadline)."""
    if credentials.password is not None:
        return sasl.PasswordAuth(
            username, credentials.password, mechanism="PLAIN" if mechanism.endswith("PLAIN") else "LOGIN"
        )
    token = credentials.access_token
    if not isinstance(token, Secret):
        assert token is not None
        async with asyncio.timeout(deadline.for_step()):
            value = await token()
        token = value if isinstance(value, Secret) else Secret(value)
    return sasl.OAuth2Auth(
        username, token, mechanism="OAUTHBEARER" if mechanism == "OAUTHBEARER" else "XOAUTH2"
    )


class Authenticates(Protocol):
    async def authenticate(self, auth: sasl.Credentials) -> Any: ...


async def authentication_step(
    rec: StepRecorder,
    step: Step,
    client: Authenticates,
    credentials: CheckCredentials,
    username: str,
    mechanism: str,
    deadline: Deadline,
    *,
    success: str,
) -> bool:
    """The sign-in step, the same for IMAP and SMTP: get the credentials (a token source is asked
    now), authenticate under the step deadline, record the outcome. True when signed in."""
    started = rec.start()
    try:
        auth = await sasl_credentials(credentials, username, mechanism, deadline)
    except OAuthError as exc:  # the token manager could not give a token (reauth_required …)
        rec.fail_with(step, started, exc)
        return False
    except (TimeoutError, MailportError) as exc:
        rec.fail(step, started, error=exc)
        return False
    try:
        async with asyncio.timeout(deadline.for_step()):
            await client.authenticate(auth)
    except (OSError, TimeoutError, MailportError) as exc:
        rec.fail(step, started, error=exc)
        return False
    rec.ok(step, started, success)
    return True


async def tls_step(
    rec: StepRecorder,
    step: Step,
    started: float,
    handshake: Callable[[], Awaitable[TLSInfo | None]],
    deadline: Deadline,
    *,
    peer_certificate: Callable[[], Awaitable[bytes | None]],
    success: Callable[[TLSInfo | None], str],
) -> bool:
    """A TLS handshake step (implicit TLS or STARTTLS), the same for IMAP and SMTP: run it under
    the step deadline and record the outcome (a refused certificate: see
    :meth:`StepRecorder.fail_tls`). True when TLS is up."""
    try:
        async with asyncio.timeout(deadline.for_step()):
            info = await handshake()
    except (OSError, TimeoutError, MailportError) as exc:
        await rec.fail_tls(step, started, exc, peer_certificate, ended=rec.start())
        return False
    rec.ok(step, started, success(info))
    return True


async def silent_greeting_failure(
    rec: StepRecorder,
    vetted: VettedHost,
    security: Security,
    error: BaseException,
    started: float,
    deadline: Deadline,
) -> None:
    """A greeting that failed, the same for IMAP and POP3: when the server said nothing
    (silence, a hang-up, another protocol's banner), look at what a fresh plaintext connection
    gets, to tell a TLS port or another service; then record the step (the client is closed)."""
    ended = rec.start()
    evidence = None
    if security is not Security.SSL and not getattr(error, "server_said", None):
        evidence = await plaintext_evidence(vetted, deadline)
    received = evidence.received if evidence else None
    if isinstance(error, ConnectionLostError) and not error.server_said and received is None:
        received = b""
    rec.fail(
        "greeting", started, error=error, received=received,
        probe=evidence.probe if evidence else None, ended=ended,
    )  # fmt: skip


async def plaintext_evidence(vetted: VettedHost, deadline: Deadline) -> PlaintextProbe | None:
    """What a fresh plaintext connection receives (bounded by the check's deadline)."""
    try:
        async with asyncio.timeout(max(0.001, min(deadline.remaining(), 4.0))):
            return await probe_plaintext(vetted, connect_timeout=2.0, greeting_timeout=0.5, probe_timeout=2.0)
    except (OSError, TimeoutError, MailportError):
        return None
