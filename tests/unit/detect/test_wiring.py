"""Detector.from_settings: the production wiring from MAILPORT_* settings."""

from __future__ import annotations

import dns.nameserver
import pytest

from mailport.config import Settings
from mailport.detect import DetectOptions, Detector, configured_oauth_providers
from mailport.errors import ConfigurationError


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def test_settings_reach_the_detector() -> None:
    s = settings(
        dns_nameservers="127.0.0.1:5353, [::1]:53",
        detect_timeout=4,
        detect_probe=False,
        detect_cache_ttl=10,
        google_client_id="id.apps.googleusercontent.com",
    )
    detector = Detector.from_settings(s)
    assert detector.options == DetectOptions(timeout=4, probe=False, cache_ttl=10)
    servers = detector.dns.resolver.nameservers
    assert [(n.address, n.port) for n in servers if isinstance(n, dns.nameserver.Do53Nameserver)] == [
        ("127.0.0.1", 5353),
        ("::1", 53),
    ]
    assert configured_oauth_providers(s) == {"google"}
    gmail = await detector.detect("a@gmail.com")
    outlook = await detector.detect("a@outlook.com")
    assert gmail.oauth is not None and gmail.oauth.usable
    assert outlook.oauth is not None and not outlook.oauth.usable


def test_bad_nameserver_setting_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        Detector.from_settings(settings(dns_nameservers="resolver.example"))
