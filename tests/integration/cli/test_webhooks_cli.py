"""``mailport webhooks …`` against a real database and a real HTTP receiver: the signing secret
printed by ``add`` only (and it signs the deliveries), tables and the API's JSON, deliveries
paged, dead letters replayed, backfill, tenant isolation, one-line errors."""

from __future__ import annotations

import asyncio
import json
import time

from standardwebhooks.webhooks import Webhook

from mailport.bootstrap import Services
from mailport.delivery import RetryPolicy
from mailport.delivery.models import DeliveryStatus
from mailport.events import Event, NewEvent
from tests.fixtures.api import TenantHandle
from tests.fixtures.webhook_receiver import MakeDispatcher, WebhookReceiver
from tests.integration.cli.conftest import AsyncCli
from tests.integration.store.test_cli import one_line_error

GIVEN_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="  # base64 of 32 bytes


async def append(
    services: Services, tenant_id: str, n: int, *, key: str = "k", type: str = "message.received"
) -> Event:
    got = await services.events.append(
        NewEvent(tenant_id, f"mbx_{key}", type, {"subject": f"{key} {n}"}, f"{key}:{tenant_id}:{n}")
    )
    assert got is not None
    return got


async def eventually(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_add_prints_the_generated_secret_once_and_it_signs_the_deliveries(
    cli: AsyncCli,
    acme: TenantHandle,
    delivery_services: Services,
    webhook_receiver: WebhookReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    added = await cli("webhooks", "add", webhook_receiver.url, "-t", "acme", "--events", "message.received")
    first, second = added.stdout.splitlines()
    assert first.startswith("added whk_") and webhook_receiver.url in first
    assert second.startswith("signing secret (shown once, store it now): whsec_")
    secret = second.rsplit(" ", 1)[1]
    endpoint_id = first.split()[1]

    await make_dispatcher()
    event = await append(delivery_services, acme.id, 1)
    got = await webhook_receiver.wait_for(1)
    verified = Webhook(secret).verify(got[0].body, got[0].headers)  # raises unless signed with it
    assert verified["id"] == event.id

    printed = [
        await cli("webhooks", "list", "-t", "acme"),
        await cli("webhooks", "list", "-t", acme.id, "--json"),
        await cli("webhooks", "show", endpoint_id, "-t", "acme"),
        await cli("webhooks", "show", endpoint_id, "-t", "acme", "--json"),
        await cli("webhooks", "update", endpoint_id, "-t", "acme", "--description", "CRM", "--json"),
        await cli("webhooks", "deliveries", endpoint_id, "-t", "acme"),
        await cli("webhooks", "deliveries", endpoint_id, "-t", "acme", "--json"),
    ]
    for result in printed:
        assert secret not in result.stdout + result.stderr and "whsec_" not in result.stdout
    listed = json.loads(printed[1].stdout)
    assert [(w["id"], w["events"], w["description"]) for w in listed] == [
        (endpoint_id, ["message.received"], None)
    ]
    assert json.loads(printed[4].stdout)["description"] == "CRM"
    assert "secret" not in listed[0]
    table = printed[0].stdout
    assert endpoint_id in table and webhook_receiver.url in table and "message.received" in table
    delivered = json.loads(printed[6].stdout)["items"]
    assert [(d["event_id"], d["status"]) for d in delivered] == [(event.id, "delivered")]
    assert delivered[0]["attempts"][0]["result"] == "success"

    as_json = json.loads(
        (await cli("webhooks", "add", webhook_receiver.url + "/2", "-t", "acme", "--json")).stdout
    )
    assert as_json["secret"].startswith("whsec_") and as_json["events"] is None  # every type


async def test_a_secret_of_your_own_is_read_from_stdin_or_a_variable_and_never_printed(
    cli: AsyncCli,
    acme: TenantHandle,
    delivery_services: Services,
    webhook_receiver: WebhookReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    from_env = await cli(
        "webhooks",
        "add",
        webhook_receiver.url,
        "-t",
        "acme",
        "--secret-env",
        "HOOK_SECRET",
        HOOK_SECRET=GIVEN_SECRET,
    )
    assert from_env.stdout.startswith("added whk_") and "secret" not in from_env.stdout
    from_stdin = json.loads(
        (
            await cli(
                "webhooks",
                "add",
                webhook_receiver.url + "/b",
                "-t",
                "acme",
                "--secret-stdin",
                "--json",
                input=GIVEN_SECRET + "\n",
            )
        ).stdout
    )
    assert from_stdin["secret"] is None  # as the API: a given secret is never returned
    await make_dispatcher()
    await append(delivery_services, acme.id, 1)
    got = await webhook_receiver.wait_for(2)
    for request in got:
        Webhook(GIVEN_SECRET).verify(request.body, request.headers)

    rotated = "whsec_" + "WllYV1ZVVFNSUVBPTk1MS0pJSEdGRURDQkE5ODc2NTQ="
    endpoint_id = from_stdin["id"]
    changed = await cli(
        "webhooks", "update", endpoint_id, "-t", "acme", "--secret-stdin", input=rotated + "\n"
    )
    assert changed.stdout.strip() == f"updated {endpoint_id} ({webhook_receiver.url}/b): active"
    assert rotated not in changed.stdout

    await cli.refused(
        "invalid_input",
        "webhooks",
        "add",
        webhook_receiver.url,
        "-t",
        "acme",
        "--secret-stdin",
        "--secret-env",
        "X",
        input=GIVEN_SECRET,
    )
    await cli.refused(
        "invalid_input",
        "webhooks",
        "add",
        webhook_receiver.url,
        "-t",
        "acme",
        "--secret-env",
        "NOT_SET_ANYWHERE",
    )
    refused = await cli(
        "webhooks",
        "add",
        webhook_receiver.url,
        "-t",
        "acme",
        "--secret-stdin",
        ok=False,
        input="not-a-secret\n",
    )
    one_line_error(refused, "invalid_input")
    assert "not-a-secret" not in refused.stderr


async def test_update_disable_enable_and_remove(
    cli: AsyncCli, acme: TenantHandle, webhook_receiver: WebhookReceiver
) -> None:
    made = json.loads((await cli("webhooks", "add", webhook_receiver.url, "-t", "acme", "--json")).stdout)
    hook = made["id"]
    assert (
        (await cli("webhooks", "update", hook, "-t", "acme", "--disable"))
        .stdout.strip()
        .endswith(": disabled")
    )
    shown = json.loads((await cli("webhooks", "show", hook, "-t", "acme", "--json")).stdout)
    assert shown["status"] == "disabled" and shown["disabled_reason"]
    assert "disabled" in (await cli("webhooks", "list", "-t", "acme")).stdout
    changed = json.loads(
        (
            await cli(
                "webhooks",
                "update",
                hook,
                "-t",
                "acme",
                "--enable",
                "--events",
                "mailbox.error,message.sent",
                "--url",
                webhook_receiver.url + "/new",
                "--description",
                "billing",
                "--json",
            )
        ).stdout
    )
    assert changed["status"] == "active" and changed["disabled_reason"] is None
    assert changed["events"] == ["mailbox.error", "message.sent"] and changed["url"].endswith("/new")
    assert changed["description"] == "billing"
    cleared = json.loads(
        (
            await cli(
                "webhooks", "update", hook, "-t", "acme", "--events", "all", "--description", "", "--json"
            )
        ).stdout
    )
    assert cleared["events"] is None and cleared["description"] is None

    await cli.refused("invalid_input", "webhooks", "update", hook, "-t", "acme")
    await cli.refused("invalid_input", "webhooks", "update", hook, "-t", "acme", "--events", "message.nope")
    await cli.refused(
        "invalid_input", "webhooks", "update", hook, "-t", "acme", "--url", "ftp://example.com/x"
    )
    assert (await cli("webhooks", "remove", hook, "-t", "acme")).stdout.strip() == f"removed {hook}"
    await cli.refused("not_found", "webhooks", "show", hook, "-t", "acme")
    await cli.refused("not_found", "webhooks", "remove", hook, "-t", "acme")
    assert json.loads((await cli("webhooks", "list", "-t", "acme", "--json")).stdout) == []


async def test_another_tenants_endpoint_is_not_found_and_bad_input_is_one_line(
    cli: AsyncCli, acme: TenantHandle, other: TenantHandle, webhook_receiver: WebhookReceiver
) -> None:
    theirs = json.loads(
        (await cli("webhooks", "add", webhook_receiver.url, "-t", other.id, "--json")).stdout
    )["id"]
    for command in (
        ("show", theirs),
        ("update", theirs, "--disable"),
        ("remove", theirs),
        ("deliveries", theirs),
        ("replay", theirs),
        ("backfill", theirs),
    ):
        await cli.refused("not_found", "webhooks", *command, "-t", "acme")
    assert json.loads((await cli("webhooks", "list", "-t", "acme", "--json")).stdout) == []
    assert (
        json.loads((await cli("webhooks", "show", theirs, "-t", other.name, "--json")).stdout)["id"] == theirs
    )

    await cli.refused("not_found", "webhooks", "list", "-t", "nobody")
    await cli.refused("invalid_input", "webhooks", "add", "not a url", "-t", "acme")
    await cli.refused(
        "invalid_input", "webhooks", "add", webhook_receiver.url, "-t", "acme", "--events", "message.nope"
    )
    await cli.refused("invalid_input", "webhooks", "add", webhook_receiver.url, "-t", "acme", "--events", "")
    # the SSRF guard, as for the API: a loopback receiver is refused unless the operator allows it
    await cli.refused(
        "host_not_allowed",
        "webhooks",
        "add",
        webhook_receiver.url,
        "-t",
        "acme",
        MAILPORT_ALLOW_PRIVATE_HOSTS="false",
    )
    await cli.refused(
        "invalid_cursor", "webhooks", "deliveries", theirs, "-t", other.id, "--cursor", "garbage"
    )
    await cli.refused(
        "not_found",
        "webhooks",
        "replay",
        theirs,
        "-t",
        other.id,
        "--delivery",
        "dlv_00000000000000000000000000",
    )


async def test_dead_letters_paged_and_replayed(
    cli: AsyncCli,
    acme: TenantHandle,
    delivery_services: Services,
    webhook_receiver: WebhookReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    hook = json.loads((await cli("webhooks", "add", webhook_receiver.url, "-t", "acme", "--json")).stdout)[
        "id"
    ]
    webhook_receiver.fail_marker = b"poison"
    await make_dispatcher(policy=RetryPolicy(first_delay=0.05, max_delay=0.1, give_up_after=0.4))
    ids = [(await append(delivery_services, acme.id, n, key="poison")).id for n in range(3)]
    for n in range(3):  # the endpoint keeps accepting other mail: it stays enabled
        await append(delivery_services, acme.id, n, key="fine")
        await asyncio.sleep(0.1)

    async def three_dead() -> bool:
        page = await delivery_services.webhooks.deliveries(
            acme.id, hook, cursor=None, limit=10, status=DeliveryStatus.DEAD
        )
        return len(page.items) == 3

    await eventually(three_dead)
    first = await cli(
        "webhooks", "deliveries", hook, "-t", "acme", "--status", "dead", "--limit", "2", "--json"
    )
    page = json.loads(first.stdout)
    assert [d["event_id"] for d in page["items"]] == [ids[2], ids[1]] and page["next_cursor"]
    rest = json.loads(
        (
            await cli(
                "webhooks",
                "deliveries",
                hook,
                "-t",
                "acme",
                "--status",
                "dead",
                "--cursor",
                page["next_cursor"],
                "--json",
            )
        ).stdout
    )
    assert [d["event_id"] for d in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    assert all(a["status_code"] == 500 for d in page["items"] + rest["items"] for a in d["attempts"])

    table = await cli("webhooks", "deliveries", hook, "-t", "acme", "--status", "dead", "--limit", "2")
    assert "more: --cursor " in table.stderr
    row = next(line for line in table.stdout.splitlines() if ids[2] in line)
    assert "dead" in row and "http_error 500" in row and "mbx_poison" in row
    everything = json.loads((await cli("webhooks", "deliveries", hook, "-t", "acme", "--json")).stdout)[
        "items"
    ]
    assert {d["status"] for d in everything} == {"dead", "delivered"} and len(everything) == 6

    webhook_receiver.fail_marker = None
    before = len(webhook_receiver.succeeded())
    one = page["items"][1]["id"]  # ids[1]'s delivery
    assert (
        await cli("webhooks", "replay", hook, "-t", "acme", "--delivery", one)
    ).stdout.strip() == "replayed 1 delivery"
    got = await webhook_receiver.wait_for(before + 1)
    assert got[-1].headers["webhook-id"] == ids[1]
    await cli.refused("not_found", "webhooks", "replay", hook, "-t", "acme", "--delivery", one)
    assert json.loads((await cli("webhooks", "replay", hook, "-t", "acme", "--json")).stdout) == {
        "replayed": 2
    }
    got = await webhook_receiver.wait_for(before + 3)
    assert sorted(r.headers["webhook-id"] for r in got[before:]) == sorted(ids)
    assert (await cli("webhooks", "replay", hook, "-t", "acme")).stdout.strip() == "replayed 0 deliveries"


async def test_backfill_hands_over_the_waiting_events(
    cli: AsyncCli,
    acme: TenantHandle,
    delivery_services: Services,
    webhook_receiver: WebhookReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    waiting = [(await append(delivery_services, acme.id, n)).id for n in range(2)]
    await append(delivery_services, acme.id, 9, type="mailbox.error")  # a type it does not take
    hook = json.loads(
        (
            await cli(
                "webhooks",
                "add",
                webhook_receiver.url,
                "-t",
                "acme",
                "--events",
                "message.received",
                "--json",
            )
        ).stdout
    )["id"]
    assert (await cli("webhooks", "backfill", hook, "-t", "acme")).stdout.strip() == "queued 2 events"
    assert json.loads((await cli("webhooks", "backfill", hook, "-t", "acme", "--json")).stdout) == {
        "queued": 0
    }
    await make_dispatcher()
    got = await webhook_receiver.wait_for(2)
    assert [r.headers["webhook-id"] for r in got] == waiting


async def test_batch_size_is_set_shown_changed_and_checked(
    cli: AsyncCli, acme: TenantHandle, webhook_receiver: WebhookReceiver
) -> None:
    made = json.loads(
        (
            await cli("webhooks", "add", webhook_receiver.url, "-t", "acme", "--batch-size", "20", "--json")
        ).stdout
    )
    hook = made["id"]
    assert made["batch_size"] == 20
    table = (await cli("webhooks", "list", "-t", "acme")).stdout
    assert "batch" in table.splitlines()[1] and " 20 " in table
    assert " 20" in (await cli("webhooks", "show", hook, "-t", "acme")).stdout
    changed = await cli("webhooks", "update", hook, "-t", "acme", "--batch-size", "1", "--json")
    assert json.loads(changed.stdout)["batch_size"] == 1
    for bad in ("0", "101"):
        await cli.refused("invalid_input", "webhooks", "update", hook, "-t", "acme", "--batch-size", bad)
        await cli.refused(
            "invalid_input", "webhooks", "add", webhook_receiver.url, "-t", "acme", "--batch-size", bad
        )
    not_a_number = await cli("webhooks", "update", hook, "-t", "acme", "--batch-size", "many", ok=False)
    assert not_a_number.returncode != 0 and "--batch-size" in not_a_number.stderr
    assert "Traceback" not in not_a_number.stderr
    listed = json.loads((await cli("webhooks", "list", "-t", "acme", "--json")).stdout)
    assert [w["batch_size"] for w in listed] == [1]
