"""MAILPORT_BROKERS entries: parsed once, credentials never shown, bad entries and a missing
extra are clear start-up errors."""

from __future__ import annotations

import sys

import pytest

from mailport.brokers import targets_of
from mailport.brokers.targets import parse, scrub
from mailport.brokers.transport import require_extra
from mailport.config import Settings
from mailport.errors import ConfigurationError


def test_credentials_never_show() -> None:
    target = parse("amqp://alice:s3cr%40t@rabbit.internal:5673/prod?exchange=mailport")
    where = (target.kind, target.host, target.port, target.path)
    assert where == ("rabbitmq", "rabbit.internal", 5673, "prod")
    assert target.password is not None and target.password.reveal() == "s3cr@t"
    for shown in (target.shown, repr(target), str(target)):
        assert "s3cr" not in shown and "alice" not in shown
    assert scrub("login failed for alice with s3cr@t", target) == "login failed for *** with ***"


def test_the_name_follows_the_destination_not_the_credentials() -> None:
    a = parse("redis://u:one@127.0.0.1:6379/0?stream=s")
    b = parse("redis://u:two@127.0.0.1:6379/0?stream=s")
    c = parse("redis://127.0.0.1:6379/0?stream=other")
    assert a.name == b.name != c.name
    assert parse("nats://127.0.0.1?subject=x&name=primary").name == "primary"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("kafka://h:9092", "unknown scheme"),
        ("nats://127.0.0.1:4222", "?subject="),
        ("redis://127.0.0.1", "?stream="),
        ("amqp://127.0.0.1", "?exchange="),
        ("rediss://h?stream=s", "not supported"),
        ("redis://h/abc?stream=s", "db number"),
        ("nats://h:99999?subject=x", "not a URL"),
    ],
)
def test_bad_entries_are_configuration_errors(url: str, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words.replace("?", r"\?")):
        parse(url)


def test_settings_read_a_comma_separated_list_and_hide_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MAILPORT_BROKERS", "nats://127.0.0.1:4222?subject=a, redis://:pw@127.0.0.1:6379/0?stream=b"
    )
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "pw@" not in repr(settings)
    assert [t.kind for t in targets_of(settings)] == ["nats", "redis"]
    monkeypatch.setenv("MAILPORT_BROKERS", "redis://a/0?stream=s,redis://a/0?stream=s")
    with pytest.raises(ConfigurationError, match="same place"):
        targets_of(Settings(_env_file=None))  # type: ignore[call-arg]


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aio_pika", None)  # as if not installed
    with pytest.raises(ConfigurationError, match=r"aio-pika is not installed.*mailport\[rabbitmq\]"):
        require_extra("rabbitmq")
