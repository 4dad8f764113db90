"""`mailport serve` with a ``graph`` mailbox SIGKILLed in the middle of a backlog, then restarted
on the same address: every message is in the event log exactly once (idempotency keys) and
reaches the webhook receiver, a duplicate only ever with the same ``webhook-id``; none lost. The
restart renews the recorded subscription rather than making a second one, and mail arriving
afterwards comes by push through serve's own ``/v1/push/graph/<channel>`` route (its public URL
is itself). Graph is the fake (``tests/fakes/graph.py``); everything of ours runs for real."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from mailport.bootstrap import build
from mailport.config import Settings
from mailport.crypto import generate_key
from mailport.mailboxes.models import ProcessingSettings
from tests.e2e.crash import assert_exactly_once, kill_mid_backlog, restarted, tenant_with_webhook, wait_all
from tests.fakes.graph import GraphFake
from tests.fixtures.graph import connect_graph_mailbox, new_email
from tests.fixtures.webhook_receiver import MakeReceiver
from tests.integration.sync.conftest import make_message
from tests.mailstack.dovecot import free_port
from tests.mailstack.idp import MockIdP

ADMIN = "admin-key-for-graph-crash-0123456789"
TOTAL = 300  # the backlog, read by delta
LIVE = 5  # after the restart, announced by notifications


async def _add_mailbox(settings: Settings, tenant_id: str, idp: MockIdP, fake: GraphFake, email: str) -> str:
    """The mailbox, written by a service graph of the test on serve's database (serve's
    orchestrator notices it within half a second)."""
    services = await build(settings)
    try:
        made = await connect_graph_mailbox(
            services, fake, idp, email, tenant_id=tenant_id, settings=ProcessingSettings(check_interval=1)
        )
        return made.mailbox.id
    finally:
        await services.aclose()


@pytest.mark.slow
def test_sigkill_mid_graph_backlog_then_restart_delivers_every_message_once(
    tmp_path: Path, idp: MockIdP, graph: GraphFake, graph_providers_file: Path, make_receiver: MakeReceiver
) -> None:
    receiver = make_receiver(delay_seconds=0.005)  # slow enough to be killed mid-way
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"  # the fake's notifications come to serve itself
    key = generate_key()
    env = {
        "MAILPORT_PORT": str(port),  # the same address after the restart: the subscription's URL
        "MAILPORT_PUBLIC_URL": public_url,
        "MAILPORT_API_POLL_SECONDS": "300",  # live mail must come by push, not by the fallback poll
        "MAILPORT_ADMIN_KEY": ADMIN,
        "MAILPORT_ALLOW_PRIVATE_HOSTS": "true",
        "MAILPORT_LOG_LEVEL": "WARNING",
        "MAILPORT_SECRET_KEYS": key,
        "MAILPORT_OAUTH_PROVIDERS_FILE": str(graph_providers_file),
        "MAILPORT_MICROSOFT_CLIENT_ID": "test-client",
        "MAILPORT_MICROSOFT_CLIENT_SECRET": "test-secret",
    }
    db = tmp_path / "var" / "mailport.db"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "var",
        secret_keys=SecretStr(key),
        oauth_providers_file=graph_providers_file,
        microsoft_client_id="test-client",
        microsoft_client_secret=SecretStr("test-secret"),
        allow_private_hosts=True,
        public_url=public_url,
    )
    email = new_email()
    account = graph.account(email)
    for i in range(TOTAL):  # the backlog is waiting when the mailbox is added
        account.add(make_message(f"backlog {i}"), "inbox")

    def delivered() -> list[tuple[str, bytes]]:
        return [(r.headers["webhook-id"], r.body) for r in receiver.succeeded()]

    def setup(url: str) -> None:
        tenant_id, _ = tenant_with_webhook(url, ADMIN, receiver.url, "graph-crash")
        asyncio.run(_add_mailbox(settings, tenant_id, idp, graph, email))

    killed_at = kill_mid_backlog(tmp_path, env, delivered, setup, url=public_url)
    with restarted(tmp_path, env, url=public_url):
        wait_all(db, delivered, TOTAL, settle=0.0)
        for i in range(LIVE):
            account.add(make_message(f"live {i}"), "inbox")
        rows = wait_all(db, delivered, TOTAL + LIVE)
    subjects = [f"backlog {i}" for i in range(TOTAL)] + [f"live {i}" for i in range(LIVE)]
    assert_exactly_once(rows, delivered, subjects, killed_at)
    assert killed_at < TOTAL, f"the kill came after the whole backlog ({killed_at})"
    assert all(json.loads(p)["connector"] == "graph" for _, p in rows)

    # one subscription for the account: the restart renewed the recorded one, made no second
    mine = [s for s in graph.subscriptions.values() if s.account == email.lower()]
    assert len(mine) == 1, [s.id for s in mine]
    assert mine[0].notification_url.startswith(f"{public_url}/v1/push/graph/")
    # the live mail came by push through serve's route: one notification each, all accepted,
    # and Graph never had to say it missed any
    ours = [d for d in graph.deliveries if d.url == mine[0].notification_url]
    created = [d for d in ours if d.kind == "change" and d.body["value"][0]["changeType"] == "created"]
    assert len(created) == LIVE, [(d.status, d.error) for d in created]
    assert all(d.status is not None and 200 <= d.status < 300 for d in created), [
        (d.status, d.error) for d in created
    ]
    lifecycle = [d.body["value"][0]["lifecycleEvent"] for d in ours if d.kind == "lifecycle"]
    assert "missed" not in lifecycle, lifecycle
