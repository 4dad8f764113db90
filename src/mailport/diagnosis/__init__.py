"""Troubleshooting: from a failing step and the server's own words to a stable code and the fix.

The connection check and the watcher hand a :class:`Failure` (the step, the protocol, the
provider, what the server said or the exception) to :func:`diagnose` and get a
:class:`Diagnosis`: a stable ``code`` (a :mod:`mailport.errors` class and a section in
``docs/troubleshooting.md``), a ``detail``, a ``hint`` that names the fix for this provider,
the server's words, and settings to try instead.

It is pure: no I/O, no clock. The server texts it recognises are the providers' exact words as
quoted in public bug reports; ``tests/unit/check/test_troubleshoot.py`` records each with its
source. No library catalogues provider error texts, so this knowledge is ours to keep:

* :mod:`.model` — what a diagnosis takes and answers;
* :mod:`.catalogue` — :func:`diagnose` and the ordered rules;
* :mod:`.steps` and :mod:`.evidence` — failures before any words (DNS, TCP, TLS, greeting);
* :mod:`.rules` — the shape of a rule and of a provider's advice;
* :mod:`.providers` — one file of words and advice per provider, and ``generic`` for any server.

Use, in the connection check (the exception alone is enough when it carries the server's words:
aiosmtplib's reply exceptions, or a ``ProviderError`` with ``server_said``)::

    except Exception as exc:
        found = diagnose(Failure(step="authentication", protocol="imap", provider=provider,
                                 host=host, port=port, security=security, auth="password",
                                 error=exc))
        step.update(ok=False, **found.step_fields())   # detail, code, hint, server_said, suggestions

For a silent greeting pass the evidence of :func:`mailport.net.probe.probe_plaintext`
(``received``/``probe``); for a hostname mismatch the certificate's names from
:func:`mailport.net.probe.peer_certificate_names` (``peer_names``).
"""

from mailport.diagnosis.catalogue import diagnose
from mailport.diagnosis.model import (
    IMPLICIT_TLS_PORTS,
    PLAINTEXT_PORTS,
    STANDARD_PORTS,
    STEPS,
    Diagnosis,
    Failure,
    ServerReply,
    Step,
    Suggestion,
)
from mailport.diagnosis.providers import PROVIDER_HOSTS, infer_provider

__all__ = [
    "IMPLICIT_TLS_PORTS",
    "PLAINTEXT_PORTS",
    "PROVIDER_HOSTS",
    "STANDARD_PORTS",
    "STEPS",
    "Diagnosis",
    "Failure",
    "ServerReply",
    "Step",
    "Suggestion",
    "diagnose",
    "infer_provider",
]
