"""Fixtures for connection-check tests: a checker that may reach the loopback bed, and helpers."""

from __future__ import annotations

import pytest

from mailport.check import CheckCredentials, ConnectionChecker, ServerTarget
from mailport.crypto import Secret
from mailport.net.guard import HostGuard


@pytest.fixture
def checker() -> ConnectionChecker:
    """The CLI's guard (private hosts allowed: the bed is on 127.0.0.1), short deadlines."""
    return ConnectionChecker(HostGuard.for_operator(), timeout=8, step_timeout=4)


def password(user: str, secret: str, provider: str | None = None) -> CheckCredentials:
    return CheckCredentials(user, password=Secret(secret), provider=provider)


def imap_ssl(port: int, host: str = "127.0.0.1") -> ServerTarget:
    return ServerTarget(host, port, "ssl")
