"""Logging set-up for the service and the CLI: one format, levels from settings.

Secrets never reach a log line because they are never formatted as plaintext: they travel
as :class:`mailport.crypto.Secret`, whose ``str`` and ``repr`` are ``***``.
"""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if getattr(configure_logging, "_done", False):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    configure_logging._done = True  # type: ignore[attr-defined]
