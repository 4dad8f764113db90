"""``mailport tenants jwt show|set|remove`` as a real process on a SQLite database: secrets
only by reference, never printed; a refusal is one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mailport.crypto import generate_key
from tests.fixtures.process import clean_environment, run_mailport
from tests.integration.auth.tokens import HS_SECRET


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = clean_environment()
    environment.update(
        {
            "MAILPORT_DATA_DIR": str(tmp_path / "var"),
            "MAILPORT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'mailport.db'}",
            "MAILPORT_SECRET_KEYS": generate_key(),
            "CRM_JWT_SECRET": HS_SECRET,
        }
    )
    return environment


def mailport(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = run_mailport(*args, env=env)
    assert HS_SECRET not in done.stdout + done.stderr
    return done


@pytest.mark.timeout(300)  # six CLI processes, each a Python start (seconds on a loaded machine)
def test_set_show_remove(env: dict[str, str], tmp_path: Path):
    assert mailport(env, "tenants", "create", "crm").returncode == 0
    secret_file = tmp_path / "secret"
    secret_file.write_text(HS_SECRET + "\n")
    for reference in ("env:CRM_JWT_SECRET", f"file:{secret_file}"):
        done = mailport(
            env, "tenants", "jwt", "set", "crm", "--hs256-secret", reference,
            "--issuer", "https://crm.example", "--tenant-claim", "org", "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        assert shown["has_secret"] is True and shown["tenant_claim"] == "org"
    shown_text = mailport(env, "tenants", "jwt", "show", "crm")
    assert shown_text.returncode == 0 and "issuer: https://crm.example" in shown_text.stdout
    removed = mailport(env, "tenants", "jwt", "remove", "crm")
    assert removed.returncode == 0 and "removed" in removed.stdout
    gone = mailport(env, "tenants", "jwt", "show", "crm")
    assert gone.returncode == 1 and gone.stderr.startswith("error [not_found]")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--hs256-secret", HS_SECRET], "inline_secret"),  # inline: refused, and not echoed
        (["--hs256-secret", "env:NOT_SET_ANYWHERE"], "secret_reference_unresolved"),
        (["--hs256-secret", "file:/nonexistent/secret"], "secret_reference_unresolved"),
        (["--hs256-secret", "env:SHORT"], "invalid_input"),
        ([], "invalid_input"),
        (["--jwks-url", "https://k.example/jwks", "--hs256-secret", "env:CRM_JWT_SECRET"], "invalid_input"),
    ],
)
def test_refusals_are_one_line(env: dict[str, str], args: list[str], code: str):
    env["SHORT"] = "too short"  # each is refused before the database is opened
    done = mailport(env, "tenants", "jwt", "set", "crm", *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith(f"error [{code}]") and len(done.stderr.strip().splitlines()) == 1
