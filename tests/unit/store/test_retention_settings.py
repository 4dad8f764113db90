"""Retention settings: validated, documented in ``.env.example`` (as every setting is)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from mailport.config import Settings
from mailport.store.retention import PurgeReport, cutoff

ROOT = Path(__file__).resolve().parents[3]


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_defaults_validation_and_an_empty_raw_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = _settings()
    assert (defaults.retention_days, defaults.raw_retention_days) == (30, None)
    for field in ("retention_days", "raw_retention_days"):
        for bad in (-1, 36_501, "soon"):
            with pytest.raises(ValidationError, match=field):
                _settings(**{field: bad})
    monkeypatch.setenv("MAILPORT_RETENTION_DAYS", "0")
    monkeypatch.setenv("MAILPORT_RAW_RETENTION_DAYS", "")
    from_env = _settings()
    assert (from_env.retention_days, from_env.raw_retention_days) == (0, None)
    monkeypatch.setenv("MAILPORT_RAW_RETENTION_DAYS", "7")
    assert _settings().raw_retention_days == 7


def test_cutoff_and_report() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert cutoff(now, 0) is None and cutoff(now, 30) == now - timedelta(days=30)
    report = PurgeReport(events=2, webhook_attempts=3)
    assert report.total == 5 and "dry_run" not in report.counts()
    assert report.summary().startswith("raw_sources=0 events=2 webhook_deliveries=0 webhook_attempts=3")


def test_every_setting_is_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text()
    missing = [name for name in Settings.model_fields if f"MAILPORT_{name.upper()}=" not in text]
    assert not missing, f".env.example lacks: {missing}"
