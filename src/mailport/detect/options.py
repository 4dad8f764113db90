"""Detection's tunables: deadlines, which mechanisms run, the ports probing tries."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mailport.servers import Security

if TYPE_CHECKING:
    from mailport.config import Settings

ONLINE_ISPDB_URL = "https://autoconfig.thunderbird.net/v1.1/"


@dataclass(frozen=True, slots=True)
class DetectOptions:
    """Tunables; tests override the ports, production takes them from Settings."""

    timeout: float = 8.0  # overall deadline (MAILPORT_DETECT_TIMEOUT)
    step_timeout: float | None = None  # per mechanism; default: min(5 s, 3/4 of timeout)
    probe: bool = True
    online_ispdb: bool = False
    online_ispdb_url: str = ONLINE_ISPDB_URL
    cache_ttl: float = 3600.0
    https_port: int = 443
    http_port: int = 80
    imap_probe_ports: tuple[tuple[int, Security], ...] = ((993, Security.SSL), (143, Security.STARTTLS))
    smtp_probe_ports: tuple[tuple[int, Security], ...] = ((465, Security.SSL), (587, Security.STARTTLS))
    # POP3 is probed only when no IMAP server answered, within what is left of the deadline.
    pop3_probe_ports: tuple[tuple[int, Security], ...] = ((995, Security.SSL), (110, Security.STARTTLS))
    probe_timeout: float = 4.0
    probe_stagger: float = 0.05
    probe_concurrency: int = 6
    allow_private_hosts: bool = False

    @property
    def effective_step_timeout(self) -> float:
        return self.step_timeout if self.step_timeout is not None else min(5.0, self.timeout * 0.75)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> DetectOptions:
        options = cls(
            timeout=settings.detect_timeout,
            probe=settings.detect_probe,
            online_ispdb=settings.detect_online_ispdb,
            cache_ttl=settings.detect_cache_ttl,
            allow_private_hosts=settings.allow_private_hosts,
        )
        return replace(options, **overrides)  # type: ignore[arg-type]
