"""The auth tests' app allows loopback hosts (the local JWKS server is on 127.0.0.1), as an
operator would with ``MAILPORT_ALLOW_PRIVATE_HOSTS=true``; the guard's refusal is tested with a
guard that forbids them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailport.config import Settings
from tests.fixtures.api import make_settings
from tests.integration.auth.jwks_server import jwks_server  # noqa: F401  (a fixture)


@pytest.fixture
def settings(fresh_database_url: str, tmp_path: Path, secret_key: str) -> Settings:
    return make_settings(fresh_database_url, tmp_path / "var", secret_key).model_copy(
        update={"allow_private_hosts": True}
    )
