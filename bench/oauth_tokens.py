"""How fast is a token for a mailbox? Cached reads and refreshes through the database adapter.

Runs the real stack: SQLite (embedded default) with migrations, the token manager with its
compare-and-swap writes, and the local authorization server for refreshes. Prints one JSON line.

    .venv/bin/python bench/oauth_tokens.py [--mailboxes 200] [--reads 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from mailport.bootstrap import build
from mailport.config import Settings
from mailport.crypto import Secret, generate_key
from mailport.mailboxes.models import AuthMethod, NewMailbox, OAuthGrant, Security, ServerSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test bed in tests/mailstack
from tests.conftest import issue_token
from tests.mailstack.idp import MockIdP


async def main(mailboxes: int, reads: int) -> dict[str, object]:
    with MockIdP() as idp, tempfile.TemporaryDirectory() as tmp:
        providers = Path(tmp) / "providers.json"
        providers.write_text(json.dumps({"google": {"token_endpoint": f"{idp.url}/google/token"}}))
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=Path(tmp),
            secret_keys=SecretStr(generate_key()),
            oauth_providers_file=providers,
            google_client_id="test-client",
            google_client_secret=SecretStr("test-secret"),
            allowed_hosts=["127.0.0.1"],  # the local IdP: the SSRF guard allows exactly that
        )
        services = await build(settings)
        try:
            tenant, _ = await services.tenants.create_tenant("bench")
            ids = []
            for _ in range(mailboxes):
                email = f"b{uuid.uuid4().hex[:10]}@example.test"
                issued = issue_token(idp, email, expires_in=-1)
                grant = OAuthGrant(
                    provider="google",
                    access_token=Secret(str(issued["access_token"])),
                    refresh_token=Secret(str(issued["refresh_token"])),
                    expires_at=datetime.now(UTC) - timedelta(seconds=1),
                )
                new = NewMailbox(
                    email=email,
                    auth_method=AuthMethod.OAUTH2,
                    imap=ServerSettings("imap.example.test", 993, Security.SSL),
                    oauth=grant,
                )
                ids.append((await services.mailboxes.create(tenant.id, new)).id)
            tokens = services.oauth.oauth.tokens

            started = time.perf_counter()
            await asyncio.gather(*(tokens.get_access_token(i) for i in ids))  # every one refreshes
            refresh_s = time.perf_counter() - started

            latencies = []
            started = time.perf_counter()
            for n in range(reads):
                t0 = time.perf_counter()
                await tokens.get_access_token(ids[n % len(ids)])
                latencies.append(time.perf_counter() - t0)
            read_s = time.perf_counter() - started
        finally:
            await services.aclose()
    return {
        "bench": "oauth_tokens",
        "mailboxes": mailboxes,
        "concurrent_refreshes_per_s": round(mailboxes / refresh_s, 1),
        "cached_reads_per_s": round(reads / read_s, 1),
        "cached_read_p50_ms": round(statistics.median(latencies) * 1000, 3),
        "cached_read_p95_ms": round(statistics.quantiles(latencies, n=20)[18] * 1000, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mailboxes", type=int, default=200)
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.mailboxes, args.reads))))
