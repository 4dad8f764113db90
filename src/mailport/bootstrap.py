"""Composition root: the one place that picks concrete adapters (database, key ring, providers).

Everything else receives what it needs as parameters, so tests build the same graph against
the real test bed with different settings instead of patching.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailport.config import Settings
from mailport.crypto import KeyRing, load_key_ring


@dataclass
class Services:
    """What the API, the CLI and the workers share."""

    settings: Settings
    key_ring: KeyRing

    async def aclose(self) -> None:
        """Release connections and background tasks."""


def build(settings: Settings) -> Services:
    """Wire the service graph for ``settings``; raises a clear error for a bad configuration."""
    configured = settings.secret_keys.get_secret_value() if settings.secret_keys else None
    key_ring = load_key_ring(configured, settings.data_dir, create=settings.uses_embedded_database)
    return Services(settings=settings, key_ring=key_ring)
