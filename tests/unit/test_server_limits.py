"""The pure parts of ``mailport serve``'s limits: the repeat filter, the connection cap's share of
the open-file limit, the limit settings."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from mailport.api.server import FD_RESERVE, ConnectionLimits, RepeatFilter
from mailport.config import Settings


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def _record(msg: str, *args: object, level: int = logging.ERROR, name: str = "asyncio") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_the_repeat_filter_lets_one_record_of_a_kind_through_per_interval() -> None:
    now = [0.0]
    repeat = RepeatFilter(10.0, clock=lambda: now[0])
    template = "cannot accept connections: %s (closed %d)"
    assert repeat.filter(_record(template, "Too many open files", 0))
    held = [repeat.filter(_record(template, "Too many open files", n)) for n in range(1000)]
    assert not any(held)
    assert repeat.filter(_record("another message"))  # a different kind is not held back
    assert repeat.filter(_record(template, "x", 1, level=logging.WARNING))  # nor another level
    now[0] = 10.0
    record = _record(template, "Too many open files", 3)
    assert repeat.filter(record)
    assert record.getMessage().endswith("[1000 more like this in the last 10s]")
    now[0] = 25.0
    record = _record(template, "Too many open files", 4)
    assert repeat.filter(record) and "more like this" not in record.getMessage()


def test_messages_that_embed_a_changing_repr_count_as_one_kind() -> None:
    repeat = RepeatFilter(10.0, clock=lambda: 0.0)
    first = "Exception in callback BaseSelectorEventLoop._start_serving(<function at 0x7f01>) when=1.5"
    assert repeat.filter(_record(first))
    assert not repeat.filter(_record(first.replace("0x7f01", "0x7f02").replace("1.5", "2.5")))


def test_the_connection_cap_leaves_descriptors_for_the_rest_of_the_service() -> None:
    settings = _settings(max_connections=1000)
    assert ConnectionLimits.from_settings(settings, open_files=1_048_576).max_connections == 1000
    assert ConnectionLimits.from_settings(settings, open_files=1024).max_connections == 1024 - FD_RESERVE
    assert ConnectionLimits.from_settings(settings, open_files=50).max_connections == 8  # never below


def test_limit_settings_are_validated() -> None:
    defaults = _settings()
    assert defaults.max_request_bytes == 1024 * 1024
    assert (defaults.header_timeout, defaults.body_timeout, defaults.keep_alive_timeout) == (10.0, 60.0, 5)
    for name, bad in (("max_request_bytes", 10), ("header_timeout", 0), ("max_connections", 2)):
        with pytest.raises(ValidationError, match=name):
            _settings(**{name: bad})
