"""Broker URLs (``MAILPORT_BROKERS``): what to publish to, parsed once, credentials kept secret.

A target is one URL; its credentials become :class:`~mailport.crypto.Secret` at once, and
:attr:`BrokerTarget.shown` (the URL without them) is all that logs, metrics and errors ever name.
A bad URL is a :class:`~mailport.errors.ConfigurationError` at start-up, never later.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from mailport.crypto import Secret
from mailport.errors import ConfigurationError

KINDS = {"nats": "nats", "amqp": "rabbitmq", "redis": "redis"}
DEFAULT_PORTS = {"nats": 4222, "rabbitmq": 5672, "redis": 6379}
TLS_SCHEMES = {"tls", "amqps", "rediss"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,23}")


@dataclass(frozen=True)
class BrokerTarget:
    """One broker: ``kind`` (nats, rabbitmq, redis), where, credentials and options."""

    kind: str
    host: str
    port: int
    path: str  # redis: the db number; rabbitmq: the virtual host
    options: dict[str, str]
    name: str  # the lease and position key: broker:<name>
    username: Secret | None = field(default=None, repr=False)
    password: Secret | None = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        """The URL without credentials (for logs, metrics labels and errors)."""
        scheme = {"nats": "nats", "rabbitmq": "amqp", "redis": "redis"}[self.kind]
        query = "&".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{scheme}://{self.host}:{self.port}/{self.path}" + (f"?{query}" if query else "")

    def option(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def secrets(self) -> list[str]:
        """The plaintext credentials, to scrub them from a library's error text."""
        return [s.reveal() for s in (self.username, self.password) if s is not None and s.reveal()]


def parse(url: str) -> BrokerTarget:
    """One ``MAILPORT_BROKERS`` entry; raises ``ConfigurationError`` naming it without secrets."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"MAILPORT_BROKERS: an entry is not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme in TLS_SCHEMES:
        raise ConfigurationError(
            f"MAILPORT_BROKERS: {scheme}:// is not supported yet (connect to {host} without TLS "
            "on a private network, or through a local TLS tunnel)"
        )
    kind = KINDS.get(scheme)
    if kind is None:
        raise ConfigurationError(f"MAILPORT_BROKERS: unknown scheme {scheme!r} (nats, amqp or redis)")
    if not host:
        raise ConfigurationError(f"MAILPORT_BROKERS: the {scheme}:// entry has no host")
    options = dict(parse_qsl(parts.query))
    required = {"nats": "subject", "redis": "stream"}.get(kind)
    if required and not options.get(required):
        raise ConfigurationError(f"MAILPORT_BROKERS: {scheme}://{host} needs ?{required}=…")
    if kind == "rabbitmq" and not (options.get("exchange") or options.get("queue")):
        raise ConfigurationError(f"MAILPORT_BROKERS: amqp://{host} needs ?exchange=… or ?queue=…")
    path = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if kind == "redis" and path and not path.isdigit():
        raise ConfigurationError(f"MAILPORT_BROKERS: redis://{host}/{path}: the path is a db number")
    real_port = port or DEFAULT_PORTS[kind]
    name = options.pop("name", None)
    if name is not None and not _NAME.fullmatch(name):
        raise ConfigurationError("MAILPORT_BROKERS: ?name= is 1-24 letters, digits, '.', '_' or '-'")
    if name is None:  # stable across credential changes: where it publishes, not who logs in
        where = f"{kind}|{host}|{real_port}|{path}|{sorted(options.items())}"
        name = f"{kind}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"
    return BrokerTarget(
        kind=kind,
        host=host,
        port=real_port,
        path=path,
        options=options,
        name=name,
        username=Secret(unquote(parts.username)) if parts.username else None,
        password=Secret(unquote(parts.password)) if parts.password else None,
    )


def scrub(text: str, target: BrokerTarget) -> str:
    """``text`` (a library's error message) with the target's credentials replaced by ``***``."""
    for secret in target.secrets():
        text = text.replace(secret, "***")
    return text
