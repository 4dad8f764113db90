"""Connection checks: test a mailbox's IMAP and SMTP settings step by step and explain failures.

* :mod:`mailport.check.runner` — :class:`ConnectionChecker`: DNS (through the SSRF guard), TCP,
  TLS, greeting, STARTTLS, sign-in and SELECT INBOX for IMAP; TCP, TLS, EHLO, STARTTLS and AUTH
  for SMTP; concurrently, each step under a deadline;
* :mod:`mailport.check.model` — what a check takes and the answer it gives (``to_dict()``);
* :mod:`mailport.diagnosis` (shared with the watcher) — from a failing step and the server's own words to a
  stable code and a hint that names the fix;
* :mod:`mailport.check.mailbox` — test a stored mailbox and record its health.

See ``docs/check.md``.
"""

from mailport.check.model import CheckCredentials, CheckResult, ProtocolResult, ServerTarget, StepResult
from mailport.check.runner import ConnectionChecker

__all__ = [
    "CheckCredentials",
    "CheckResult",
    "ConnectionChecker",
    "ProtocolResult",
    "ServerTarget",
    "StepResult",
]
