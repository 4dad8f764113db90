"""``mailport check``: how command-line settings combine with detected ones (pure)."""

from __future__ import annotations

from mailport.check import ServerTarget
from mailport.cli.check import SecurityOption, _target

DETECTED = ServerTarget("imap.example.com", 993, "ssl", "me@example.com")


def test_detected_settings_when_nothing_is_given() -> None:
    assert _target("imap", None, None, None, DETECTED) == DETECTED
    assert _target("imap", None, None, None, None) is None


def test_a_given_host_replaces_detection_with_the_usual_port() -> None:
    assert _target("imap", "mail.local", None, None, DETECTED) == ServerTarget("mail.local", 993, "ssl")
    assert _target("imap", "mail.local", 143, None, None) == ServerTarget("mail.local", 143, "starttls")
    assert _target("smtp", "mail.local", 587, None, None) == ServerTarget("mail.local", 587, "starttls")
    assert _target("smtp", "mail.local", None, SecurityOption.starttls, None) == ServerTarget(
        "mail.local", 587, "starttls"
    )


def test_port_or_security_alone_adjusts_the_detected_server() -> None:
    assert _target("imap", None, None, SecurityOption.starttls, DETECTED) == ServerTarget(
        "imap.example.com", 143, "starttls", "me@example.com"
    )
    assert _target("imap", None, 10993, None, DETECTED).port == 10993  # type: ignore[union-attr]
