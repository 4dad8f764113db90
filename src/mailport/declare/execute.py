"""Carrying out a plan through the services, the same calls the API routes make.

The plan was checked as a whole before this runs, and :func:`preflight` vets its hosts against
the SSRF guard first, so what can still fail is what only the service can know at that moment (a
name taken meanwhile, a DNS answer that changed). Changes run
one by one, in the plan's order; the first failure stops the run and is reported with what was
done before it (:class:`Outcome`), never hidden: running ``mailport apply`` again, once the
cause is fixed, does the rest (what was done is then no change).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailport.declare.plan import Change, Plan
from mailport.delivery.urls import vet_webhook_url
from mailport.errors import MailportError
from mailport.mailboxes.service import check_hosts
from mailport.services import Services


async def preflight(services: Services, plan: Plan) -> None:
    """Vet every host the plan saves against the SSRF guard, as the services will when they
    save it, so the most common server-side refusal comes before the first write."""
    for change in plan.changes:
        if change.op == "-" or change.payload is None:
            continue
        if change.kind == "webhook" and getattr(change.payload, "url", None):
            await vet_webhook_url(change.payload.url, services.guard)
        elif change.kind == "mailbox":
            servers = {name: getattr(change.payload, name, None) for name in ("imap", "smtp", "pop3")}
            await check_hosts(services.guard, **{k: v.to_model() for k, v in servers.items() if v})


@dataclass
class Outcome:
    done: list[Change] = field(default_factory=list)
    failed: Change | None = None
    error: MailportError | None = None


async def execute(services: Services, plan: Plan, tenant_ids: dict[str, str]) -> Outcome:
    """Apply every change of ``plan`` (``tenant_ids``: name → id, completed as tenants are made)."""
    outcome = Outcome()
    for change in plan.changes:
        try:
            await _one(services, change, tenant_ids)
        except MailportError as exc:
            outcome.failed, outcome.error = change, exc
            return outcome
        outcome.done.append(change)
    return outcome


async def _one(services: Services, change: Change, tenant_ids: dict[str, str]) -> None:
    if change.kind == "tenant":
        if change.op == "+":
            tenant, _key = await services.tenants.create_tenant(change.key)
            tenant_ids[change.key] = tenant.id
        else:
            assert change.target is not None
            await services.tenants.delete(change.target)
        return
    tenant_id = tenant_ids[change.tenant]
    if change.kind == "jwt":
        if change.op == "-":
            await services.tenants.delete_jwt(tenant_id)
        else:
            await services.tenants.set_jwt(tenant_id, change.payload)
        return
    if change.kind == "oauth_app":
        if change.op == "-":
            await services.oauth.delete_app(tenant_id, change.key)
        else:
            await services.oauth.put_app(tenant_id, change.key, **change.payload)
        return
    hooks, boxes = services.webhooks, services.mailboxes
    update, delete = (
        (hooks.update, hooks.delete) if change.kind == "webhook" else (boxes.update, boxes.delete)
    )
    if change.op == "+":
        if change.kind == "webhook":
            made_id = (await hooks.create(tenant_id, change.payload))[0].id
        else:
            made_id = (await boxes.create_from(tenant_id, change.payload)).id
        if change.then is not None:  # declared disabled: disabled once made
            await update(tenant_id, made_id, change.then)
        return
    assert change.target is not None
    if change.op == "~":
        await update(tenant_id, change.target, change.payload)
    else:
        await delete(tenant_id, change.target)
