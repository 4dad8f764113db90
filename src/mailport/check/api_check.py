"""The connection check of a mailbox read through a provider's mail API (``gmail_api``, ``graph``).

Such a mailbox has no IMAP or SMTP server to probe: the check is two steps through the
mailbox's own connector, so it exercises exactly what the watcher and the send worker will use
(the token manager, the host guard, the API's base URL):

* ``token`` — an access token from the token manager (refreshed when due): a dead grant is
  ``reauth_required``, an unreachable provider a temporary error;
* ``profile`` — the connector's ``connect()``, which asks the API who the token belongs to
  (Gmail ``users.getProfile``, Graph ``GET /me``): a token the API refuses after one forced
  refresh (``oauth_token_rejected``), a grant without the connector's scope
  (``oauth_permission_missing``), the API switched off for the project or the mailbox
  (``api_not_enabled``), or the network.

Failures are steps in the answer with the error's own code and hint, never exceptions, as in the
IMAP and SMTP checks (:mod:`mailport.check.runner`). The answer's ``api`` part takes the place
of ``imap`` and ``smtp``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from mailport.check.model import CheckResult, ProtocolResult, StepResult
from mailport.connectors.base import Connector
from mailport.crypto import Secret
from mailport.errors import MailportError, MailTimeoutError

API_NAMES = {"gmail_api": "the Gmail API", "graph": "Microsoft Graph"}
Clock = Callable[[], float]


class _Steps:
    """Times each step and turns a failure into the answer's fields."""

    def __init__(self, result: ProtocolResult, clock: Clock) -> None:
        self.result = result
        self.clock = clock

    async def run(self, name: str, work: Awaitable[str], *, timeout: float) -> bool:
        started = self.clock()
        try:
            async with asyncio.timeout(timeout):
                detail = await work
        except TimeoutError:
            self._fail(name, started, MailTimeoutError(f"{name}: no answer within {timeout:g} s"))
            return False
        except MailportError as exc:
            self._fail(name, started, exc)
            return False
        self.result.steps.append(StepResult(name, True, self._ms(started), detail))
        return True

    def _ms(self, started: float) -> float:
        return round((self.clock() - started) * 1000, 1)

    def _fail(self, name: str, started: float, exc: MailportError) -> None:
        self.result.steps.append(
            StepResult(
                name,
                False,
                self._ms(started),
                exc.message,
                code=exc.code,
                hint=exc.hint,
                server_said=exc.server_said,
            )
        )


async def check_api(
    connector_key: str,
    connector: Connector,
    token: Callable[[], Awaitable[Secret]],
    *,
    timeout: float,
    clock: Clock = time.perf_counter,
) -> CheckResult:
    """Check a mailbox read by ``connector`` (see the module docstring); ``token`` is the
    mailbox's token source."""
    name = API_NAMES.get(connector_key, connector_key)
    steps = _Steps(ProtocolResult("api"), clock)

    async def fresh_token() -> str:
        await token()
        return "an access token is at hand"

    async def profile() -> str:
        await connector.connect()
        return f"signed in to {name}"

    try:
        if await steps.run("token", fresh_token(), timeout=timeout):
            await steps.run("profile", profile(), timeout=timeout)
    finally:
        with contextlib.suppress(Exception):
            await connector.disconnect()
    return CheckResult(imap=None, api=steps.result)
