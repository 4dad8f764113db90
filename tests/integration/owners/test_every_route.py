"""Owner isolation on every route (issue 19): one table row per operation of the OpenAPI
document says what a user's token gets for another user's things, and the test fails when an
operation has no row, so a new route cannot skip the question.

The intruders are bob (same tenant as alice) and the second tenant's alice (the same ``sub``
under another tenant). Rows:

* :class:`Hidden` — alice's mailbox, message, draft, send, contact or group: 404, and nothing of
  alice's in the answer; for a read, alice's own token does reach it (the row is not vacuous);
* :class:`Forbidden` — tenant-wide configuration, or acting for another user: 403 ``owner_forbidden``;
* :class:`Narrowed` — a list: none of alice's things in the intruder's answer, its own are there;
* :class:`Open` — reads no stored data (detection, checks, liveness): a user's token may call it;
* :class:`Refused` — not for a user's token at all (the instance admin, the browser's OAuth pages).

At the end alice's things are all still there, unchanged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from tests.integration.owners.conftest import User, World

Request = Callable[[World], tuple[str, str, dict[str, Any]]]  # -> method, url, httpx keywords


@dataclass(frozen=True)
class Hidden:
    request: Request
    code: str = "not_found"


@dataclass(frozen=True)
class Forbidden:
    request: Request


@dataclass(frozen=True)
class Narrowed:
    request: Request
    own: Callable[[User], list[str]]  # what the intruder's answer must show of its own


@dataclass(frozen=True)
class Open:
    request: Request
    status: int


@dataclass(frozen=True)
class Refused:
    request: Request
    statuses: tuple[int, ...]


Row = Hidden | Forbidden | Narrowed | Open | Refused


def on(method: str, url: Callable[[World], str], **kwargs: Any) -> Request:
    return lambda w: (method, url(w), kwargs)


def fixed(method: str, url: str, **kwargs: Any) -> Request:
    return lambda _w: (method, url, kwargs)


def box(path: str = "") -> Callable[[World], str]:
    """A URL under alice's mailbox; ``{ref}``, ``{draft}``, ``{send}``, ``{key}`` are hers."""

    def url(w: World) -> str:
        a = w.alice
        return a.base + path.format(
            ref=a.message["ref"], draft=a.draft_ref, send=a.send_id, key=a.message["thread_key"]
        )

    return url


def contact(path: str = "") -> Callable[[World], str]:
    return lambda w: f"/v1/contacts/{w.alice.contact['id']}{path}"


def group(path: str = "") -> Callable[[World], str]:
    return lambda w: f"/v1/contacts/groups/{w.alice.group['id']}{path}".format(contact=w.alice.contact["id"])


def tenant(path: str = "") -> Callable[[World], str]:
    return lambda w: f"/v1/tenants/{w.tenant.id}{path}"


MESSAGE = {"to": ["zed@example.test"], "subject": "intruder", "text": "x"}
RAW = b"From: x@example.test\r\nSubject: intruder\r\n\r\nx\r\n"
ADMIN = (401, 403)  # a user's token is not the admin key

TABLE: dict[tuple[str, str], Row] = {
    # the instance admin's tenants and keys
    ("POST", "/v1/tenants"): Refused(fixed("POST", "/v1/tenants", json={"name": "x"}), ADMIN),
    ("GET", "/v1/tenants"): Refused(fixed("GET", "/v1/tenants"), ADMIN),
    ("GET", "/v1/tenants/{tenant_id}"): Refused(on("GET", tenant()), ADMIN),
    ("DELETE", "/v1/tenants/{tenant_id}"): Refused(on("DELETE", tenant()), ADMIN),
    ("POST", "/v1/tenants/{tenant_id}/keys"): Refused(on("POST", tenant("/keys")), ADMIN),
    ("GET", "/v1/tenants/{tenant_id}/keys"): Refused(on("GET", tenant("/keys")), ADMIN),
    ("DELETE", "/v1/tenants/{tenant_id}/keys/{key_id}"): Refused(on("DELETE", tenant("/keys/key_x")), ADMIN),
    # the instance admin's view of the fleet (docs/fleet.md)
    ("GET", "/v1/workers"): Refused(fixed("GET", "/v1/workers"), ADMIN),
    ("GET", "/v1/workers/{worker_id}"): Refused(fixed("GET", "/v1/workers/host:1:0"), ADMIN),
    # the tenant's JWT verifier: tenant-wide configuration
    ("GET", "/v1/tenants/{tenant_id}/jwt"): Forbidden(on("GET", tenant("/jwt"))),
    ("PUT", "/v1/tenants/{tenant_id}/jwt"): Forbidden(
        on(
            "PUT",
            tenant("/jwt"),
            json={"kind": "hs256", "secret": "s" * 40, "issuer": "https://evil.example"},
        )
    ),
    ("DELETE", "/v1/tenants/{tenant_id}/jwt"): Forbidden(on("DELETE", tenant("/jwt"))),
    # mailboxes
    ("POST", "/v1/mailboxes"): Forbidden(
        lambda w: (
            "POST",
            "/v1/mailboxes",
            {
                "json": {
                    "email": "x@example.test",
                    "auth_method": "oauth2",
                    "connector": "gmail_api",
                    "owner": w.someone_else,
                }
            },
        )
    ),
    ("GET", "/v1/mailboxes"): Narrowed(fixed("GET", "/v1/mailboxes"), lambda u: [u.mailbox["id"]]),
    ("GET", "/v1/mailboxes/{mailbox_id}"): Hidden(on("GET", box())),
    ("PATCH", "/v1/mailboxes/{mailbox_id}"): Hidden(on("PATCH", box(), json={"label": "pwned"})),
    ("DELETE", "/v1/mailboxes/{mailbox_id}"): Hidden(on("DELETE", box())),
    ("POST", "/v1/mailboxes/{mailbox_id}/test"): Hidden(on("POST", box("/test"))),
    ("GET", "/v1/mailboxes/{mailbox_id}/health"): Hidden(on("GET", box("/health"))),
    ("GET", "/v1/health"): Narrowed(fixed("GET", "/v1/health"), lambda u: [u.mailbox["id"]]),
    ("GET", "/v1/stats"): Forbidden(fixed("GET", "/v1/stats")),
    # detection and checks store nothing
    ("POST", "/v1/detect"): Open(fixed("POST", "/v1/detect", json={"email": "not an address"}), 422),
    ("POST", "/v1/check"): Open(fixed("POST", "/v1/check", json={}), 422),
    # OAuth
    # a device sign-in is the user's own flow (another's is 404: test_oauth_owner.py)
    ("GET", "/v1/oauth/device/{flow_id}"): Open(fixed("GET", "/v1/oauth/device/dev_x"), 404),
    ("POST", "/v1/oauth/{provider}/authorize"): Hidden(  # reconnecting alice's mailbox
        lambda w: ("POST", "/v1/oauth/google/authorize", {"json": {"mailbox_id": w.alice.mailbox["id"]}})
    ),
    ("GET", "/v1/oauth/{provider}/start"): Refused(fixed("GET", "/v1/oauth/google/start"), (400,)),
    ("GET", "/v1/oauth/{provider}/callback"): Refused(fixed("GET", "/v1/oauth/google/callback"), (400,)),
    ("POST", "/v1/oauth/{provider}/device"): Open(
        fixed("POST", "/v1/oauth/microsoft/device", json={"connector": "carrier-pigeon"}), 422
    ),
    ("DELETE", "/v1/mailboxes/{mailbox_id}/oauth"): Hidden(on("DELETE", box("/oauth"))),
    ("GET", "/v1/oauth-apps"): Forbidden(fixed("GET", "/v1/oauth-apps")),
    ("PUT", "/v1/oauth-apps/{provider}"): Forbidden(
        fixed("PUT", "/v1/oauth-apps/google", json={"client_id": "x", "client_secret": "y"})
    ),
    ("DELETE", "/v1/oauth-apps/{provider}"): Forbidden(fixed("DELETE", "/v1/oauth-apps/google")),
    ("POST", "/v1/connect-links"): Forbidden(
        lambda w: ("POST", "/v1/connect-links", {"json": {"owner": w.someone_else}})
    ),
    # a mailbox's messages, live
    ("GET", "/v1/mailboxes/{mailbox_id}/messages/{message_id}/raw"): Hidden(
        on("GET", box("/messages/{ref}/raw"))
    ),
    ("GET", "/v1/mailboxes/{mailbox_id}/messages/{message_id}/attachments/{n}"): Hidden(
        on("GET", box("/messages/{ref}/attachments/0"))
    ),
    ("GET", "/v1/mailboxes/{mailbox_id}/messages"): Hidden(on("GET", box("/messages"))),
    ("POST", "/v1/mailboxes/{mailbox_id}/messages/search"): Hidden(
        on("POST", box("/messages/search"), json={"subject": "message"})
    ),
    ("POST", "/v1/mailboxes/{mailbox_id}/messages/flags"): Hidden(
        on("POST", box("/messages/flags"), json={"refs": ["ref_x"], "add": ["seen"]})
    ),
    ("POST", "/v1/mailboxes/{mailbox_id}/messages/move"): Hidden(
        on("POST", box("/messages/move"), json={"refs": ["ref_x"], "folder": "Trash"})
    ),
    ("POST", "/v1/mailboxes/{mailbox_id}/messages/delete"): Hidden(
        on("POST", box("/messages/delete"), json={"refs": ["ref_x"], "permanent": True})
    ),
    ("POST", "/v1/mailboxes/{mailbox_id}/messages/import"): Hidden(
        on("POST", box("/messages/import"), content=RAW, headers={"content-type": "message/rfc822"})
    ),
    ("GET", "/v1/mailboxes/{mailbox_id}/messages/{ref}"): Hidden(on("GET", box("/messages/{ref}"))),
    ("DELETE", "/v1/mailboxes/{mailbox_id}/messages/{ref}"): Hidden(
        on("DELETE", box("/messages/{ref}"), params={"permanent": "true"})
    ),
    ("POST", "/v1/mailboxes/{mailbox_id}/messages/{ref}/flags"): Hidden(
        on("POST", box("/messages/{ref}/flags"), json={"add": ["flagged"]})
    ),
    ("POST", "/v1/mailboxes/{mailbox_id}/messages/{ref}/move"): Hidden(
        on("POST", box("/messages/{ref}/move"), json={"folder": "Trash"})
    ),
    ("GET", "/v1/mailboxes/{mailbox_id}/threads/{key}"): Hidden(on("GET", box("/threads/{key}"))),
    ("GET", "/v1/mailboxes/{mailbox_id}/folders"): Hidden(on("GET", box("/folders"))),
    ("POST", "/v1/mailboxes/{mailbox_id}/folders"): Hidden(
        on("POST", box("/folders"), json={"name": "Pwned"})
    ),
    ("PATCH", "/v1/mailboxes/{mailbox_id}/folders/{path}"): Hidden(
        on("PATCH", box("/folders/Trash"), json={"name": "Pwned"})
    ),
    ("DELETE", "/v1/mailboxes/{mailbox_id}/folders/{path}"): Hidden(on("DELETE", box("/folders/Trash"))),
    # sending, the outbox and drafts
    ("POST", "/v1/mailboxes/{mailbox_id}/send"): Hidden(on("POST", box("/send"), json=MESSAGE)),
    ("GET", "/v1/mailboxes/{mailbox_id}/outbox"): Hidden(on("GET", box("/outbox"))),
    ("GET", "/v1/mailboxes/{mailbox_id}/outbox/{send_id}"): Hidden(on("GET", box("/outbox/{send}"))),
    ("DELETE", "/v1/mailboxes/{mailbox_id}/outbox/{send_id}"): Hidden(on("DELETE", box("/outbox/{send}"))),
    ("GET", "/v1/mailboxes/{mailbox_id}/drafts"): Hidden(on("GET", box("/drafts"))),
    ("POST", "/v1/mailboxes/{mailbox_id}/drafts"): Hidden(on("POST", box("/drafts"), json=MESSAGE)),
    ("GET", "/v1/mailboxes/{mailbox_id}/drafts/{ref}"): Hidden(on("GET", box("/drafts/{draft}"))),
    ("PUT", "/v1/mailboxes/{mailbox_id}/drafts/{ref}"): Hidden(
        on("PUT", box("/drafts/{draft}"), json=MESSAGE)
    ),
    ("DELETE", "/v1/mailboxes/{mailbox_id}/drafts/{ref}"): Hidden(on("DELETE", box("/drafts/{draft}"))),
    ("POST", "/v1/mailboxes/{mailbox_id}/drafts/{ref}/send"): Hidden(on("POST", box("/drafts/{draft}/send"))),
    # a mailbox's contact harvest
    ("GET", "/v1/mailboxes/{mailbox_id}/contacts"): Hidden(on("GET", box("/contacts"))),
    ("POST", "/v1/mailboxes/{mailbox_id}/contacts/sync"): Hidden(on("POST", box("/contacts/sync"))),
    # webhooks: tenant-wide
    ("POST", "/v1/webhooks"): Forbidden(
        fixed("POST", "/v1/webhooks", json={"url": "https://hooks.example/x"})
    ),
    ("GET", "/v1/webhooks"): Forbidden(fixed("GET", "/v1/webhooks")),
    ("GET", "/v1/webhooks/{webhook_id}"): Forbidden(fixed("GET", "/v1/webhooks/wh_x")),
    ("PATCH", "/v1/webhooks/{webhook_id}"): Forbidden(fixed("PATCH", "/v1/webhooks/wh_x", json={})),
    ("DELETE", "/v1/webhooks/{webhook_id}"): Forbidden(fixed("DELETE", "/v1/webhooks/wh_x")),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): Forbidden(fixed("GET", "/v1/webhooks/wh_x/deliveries")),
    ("POST", "/v1/webhooks/{webhook_id}/replay"): Forbidden(
        fixed("POST", "/v1/webhooks/wh_x/replay", json={})
    ),
    ("POST", "/v1/webhooks/{webhook_id}/backfill"): Forbidden(
        fixed("POST", "/v1/webhooks/wh_x/backfill", json={})
    ),
    # the pull API: one of the user's mailboxes at a time
    ("GET", "/v1/events"): Hidden(
        lambda w: ("GET", "/v1/events", {"params": {"mailbox_id": w.alice.mailbox["id"]}})
    ),
    ("POST", "/v1/events/ack"): Hidden(
        lambda w: ("POST", "/v1/events/ack", {"json": {"through": "0", "mailbox_id": w.alice.mailbox["id"]}})
    ),
    ("GET", "/v1/events/consumers"): Narrowed(
        fixed("GET", "/v1/events/consumers"), lambda u: [u.mailbox["id"]]
    ),
    ("DELETE", "/v1/events/consumers/{name}"): Hidden(
        lambda w: ("DELETE", "/v1/events/consumers/crm", {"params": {"mailbox_id": w.alice.mailbox["id"]}})
    ),
    # push channels: tenant-wide
    ("POST", "/v1/push-channels/{connector}"): Forbidden(
        fixed("POST", "/v1/push-channels/gmail_api", json={"topic": "projects/p/topics/t"})
    ),
    ("GET", "/v1/push-channels"): Forbidden(fixed("GET", "/v1/push-channels")),
    ("DELETE", "/v1/push-channels/{channel_id}"): Forbidden(fixed("DELETE", "/v1/push-channels/pch_x")),
    # contact groups: the user's book
    ("GET", "/v1/contacts/groups"): Narrowed(fixed("GET", "/v1/contacts/groups"), lambda u: [u.group["id"]]),
    ("POST", "/v1/contacts/groups"): Forbidden(
        lambda w: ("POST", "/v1/contacts/groups", {"json": {"name": "x", "owner": w.someone_else}})
    ),
    ("GET", "/v1/contacts/groups/{group_id}"): Hidden(on("GET", group()), "contact_group_not_found"),
    ("PATCH", "/v1/contacts/groups/{group_id}"): Hidden(
        on("PATCH", group(), json={"name": "pwned"}), "contact_group_not_found"
    ),
    ("DELETE", "/v1/contacts/groups/{group_id}"): Hidden(on("DELETE", group()), "contact_group_not_found"),
    ("GET", "/v1/contacts/groups/{group_id}/members"): Hidden(
        on("GET", group("/members")), "contact_group_not_found"
    ),
    ("POST", "/v1/contacts/groups/{group_id}/members"): Hidden(
        lambda w: ("POST", group("/members")(w), {"json": {"contacts": [w.alice.contact["id"]]}}),
        "contact_group_not_found",
    ),
    ("DELETE", "/v1/contacts/groups/{group_id}/members/{contact_id}"): Hidden(
        on("DELETE", group("/members/{contact}")), "contact_group_not_found"
    ),
    # contacts: the user's book
    ("GET", "/v1/contacts"): Narrowed(fixed("GET", "/v1/contacts"), lambda u: [u.contact["id"]]),
    ("POST", "/v1/contacts"): Forbidden(
        lambda w: ("POST", "/v1/contacts", {"json": {"email": "x@example.test", "owner": w.someone_else}})
    ),
    ("GET", "/v1/contacts/export"): Narrowed(
        fixed("GET", "/v1/contacts/export"), lambda u: [u.contact["email"]]
    ),
    ("POST", "/v1/contacts/merge"): Hidden(
        lambda w: (
            "POST",
            "/v1/contacts/merge",
            {"json": {"into": w.alice.contact["id"], "from": [w.caller.contact["id"]]}},
        ),
        "contact_not_found",
    ),
    ("GET", "/v1/contacts/exclusions"): Narrowed(
        lambda w: ("GET", "/v1/contacts/exclusions", {"params": {"address": w.alice.contact["email"]}}),
        lambda u: [],
    ),
    ("GET", "/v1/contacts/blocklist"): Forbidden(fixed("GET", "/v1/contacts/blocklist")),
    ("PUT", "/v1/contacts/blocklist"): Forbidden(
        fixed("PUT", "/v1/contacts/blocklist", json={"addresses": [], "domains": []})
    ),
    ("POST", "/v1/contacts/blocklist"): Forbidden(
        fixed("POST", "/v1/contacts/blocklist", json={"domain": "example.test"})
    ),
    ("DELETE", "/v1/contacts/blocklist"): Forbidden(
        fixed("DELETE", "/v1/contacts/blocklist", params={"domain": "example.test"})
    ),
    ("GET", "/v1/contacts/{contact_id}"): Hidden(on("GET", contact()), "contact_not_found"),
    ("PATCH", "/v1/contacts/{contact_id}"): Hidden(
        on("PATCH", contact(), json={"name": "pwned"}), "contact_not_found"
    ),
    ("DELETE", "/v1/contacts/{contact_id}"): Hidden(on("DELETE", contact()), "contact_not_found"),
    ("GET", "/v1/contacts/{contact_id}/history"): Hidden(on("GET", contact("/history")), "contact_not_found"),
    # liveness: no data
    ("GET", "/healthz"): Open(fixed("GET", "/healthz"), 200),
    ("GET", "/readyz"): Open(fixed("GET", "/readyz"), 200),
}


def operations(app: FastAPI) -> set[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def test_every_operation_of_the_openapi_document_has_an_isolation_row(app: FastAPI) -> None:
    found = operations(app)
    missing = sorted(found - TABLE.keys())
    assert not missing, (
        "operations without a row in the owner isolation table (what does another user's token "
        f"get?): {missing}"
    )
    stale = sorted(TABLE.keys() - found)
    assert not stale, f"rows for operations the API no longer has: {stale}"


def _leaks(answer: httpx.Response, victim: User, sent: str) -> list[str]:
    """The victim's markers in the answer that the request itself did not carry."""
    return [m for m in victim.markers() if m and m in answer.text and m not in sent]


async def _call(user: User, request: Request, world: World) -> tuple[httpx.Response, str]:
    world.intruder = user
    method, url, kwargs = request(world)
    answer = await user.client.request(method, url, **kwargs)
    return answer, f"{url} {kwargs!r}"


def _verdict(row: Row, answer: httpx.Response, intruder: User, victim: User, sent: str) -> str | None:
    """What is wrong with ``answer`` (None: as the row says)."""
    body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(row, Hidden):
        if answer.status_code != 404 or error != row.code:
            return f"expected 404 {row.code}, got {answer.status_code} {answer.text[:200]}"
    elif isinstance(row, Forbidden):
        if answer.status_code != 403 or error != "owner_forbidden":
            return f"expected 403 owner_forbidden, got {answer.status_code} {answer.text[:200]}"
    elif isinstance(row, Narrowed):
        if answer.status_code != 200:
            return f"expected 200, got {answer.status_code} {answer.text[:200]}"
        absent = [m for m in row.own(intruder) if m not in answer.text]
        if absent:
            return f"the caller's own {absent} missing from its list"
    elif isinstance(row, Open):
        if answer.status_code != row.status:
            return f"expected {row.status}, got {answer.status_code} {answer.text[:200]}"
    elif answer.status_code not in row.statuses:
        return f"expected one of {row.statuses}, got {answer.status_code} {answer.text[:200]}"
    if leaked := _leaks(answer, victim, sent):
        return f"the answer shows {leaked}"
    return None


async def snapshot(user: User) -> dict[str, Any]:
    """What the user's own token reads of its things (to see that nothing changed them)."""
    paths = {
        "mailbox": user.base,
        "messages": f"{user.base}/messages",
        "drafts": f"{user.base}/drafts",
        "outbox": f"{user.base}/outbox",
        "contact": f"/v1/contacts/{user.contact['id']}",
        "group": f"/v1/contacts/groups/{user.group['id']}",
    }
    return {name: (await user.client.get(path)).json() for name, path in paths.items()}


async def test_another_users_token_never_reaches_alices_things(world: World) -> None:
    alice = world.alice
    before = await snapshot(alice)
    failures: list[str] = []
    for (method, path), row in TABLE.items():
        for intruder in (world.bob, world.other_tenant_alice):
            answer, sent = await _call(intruder, row.request, world)
            if (wrong := _verdict(row, answer, intruder, alice, sent)) is not None:
                who = "bob" if intruder is world.bob else "the other tenant's alice"
                failures.append(f"{method} {path} as {who}: {wrong}")
        if isinstance(row, Hidden) and method == "GET":
            # not vacuous: alice's own token reaches what the intruders were refused
            own, _ = await _call(alice, row.request, world)
            if own.status_code == 404 and own.json().get("error") == row.code:
                failures.append(f"{method} {path}: alice's own token gets {own.text[:200]}")
    assert not failures, "\n".join(failures)

    after = await snapshot(alice)
    assert after == before  # nothing the intruders tried changed anything of alice's
