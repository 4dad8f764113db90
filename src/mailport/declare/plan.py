"""The plan: what ``mailport apply`` would create (``+``), change (``~``) and delete (``-``).

Built from the file, the secrets its references name and a :class:`~mailport.declare.state.Snapshot`
of the service, before anything is written: every reference is resolved and every request the
services will get is built and checked here, so a refusal leaves the service untouched.

Identity: tenants by ``name``; within a tenant, its one JWT verifier, mailboxes by address
(compared as the service compares them), webhooks by URL, OAuth apps by provider. Secrets cannot
be read back in plain text from an API, but the services hand out the stored ones sealed: a
declared secret is compared with the stored one by decrypting it here (no digest column, no
migration), so a rotated secret is one ``~`` and an unchanged one is no change at all.
``stored`` keeps what is there.

Order is stable: tenants in the file's order, each with its JWT verifier, OAuth apps, webhooks
and mailboxes in the file's order, then what ``--prune`` deletes (sorted), then pruned tenants
(sorted).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from mailport.auth.schemas import JwtSettings
from mailport.crypto import Secret
from mailport.declare.model import AccountsFile, JwtSpec, MailboxSpec, OAuthAppSpec, TenantSpec, WebhookSpec
from mailport.declare.secrets import SecretRef, resolve
from mailport.declare.state import Snapshot, TenantState
from mailport.declare.views import (
    View,
    app_view,
    jwt_view,
    mailbox_view,
    server_view,
    settings_view,
    webhook_view,
)
from mailport.delivery.schemas import WebhookCreate, WebhookUpdate
from mailport.delivery.signing import check_secret
from mailport.errors import DeclarationInvalidError, MailportError, SecretReferenceError
from mailport.mailboxes.models import AuthMethod, ProcessingSettings
from mailport.mailboxes.schemas import (
    ContactsPatch,
    MailboxCreate,
    MailboxUpdate,
    SendingIn,
    SendingPatch,
    ServerIn,
    SettingsPatch,
)
from mailport.mailboxes.service import (
    check_action,
    check_connector_fields,
    check_contacts,
    check_credentials,
    check_folders,
)
from mailport.oauth.providers import ProviderRegistry
from mailport.validation import email_key

Op = Literal["+", "~", "-"]
Kind = Literal["tenant", "jwt", "oauth_app", "webhook", "mailbox"]
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Change:
    op: Op
    kind: Kind
    tenant: str
    key: str  # the tenant's name, the app's provider, the webhook's URL, the mailbox's address
    details: tuple[str, ...] = ()
    target: str | None = None  # the id acted on (changes and deletions)
    payload: Any = None  # the request the service gets
    then: Any = None  # a second request after a creation (disabling what is declared disabled)

    def line(self) -> str:
        where = "" if self.kind == "tenant" else f" (tenant {self.tenant})"
        text = f"{self.op} {self.kind} {self.key}{where}"
        return f"{text}: {'; '.join(self.details)}" if self.details else text

    def as_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "kind": self.kind,
            "tenant": self.tenant,
            "key": self.key,
            "details": list(self.details),
        }


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]

    def count(self, op: Op) -> int:
        return sum(1 for c in self.changes if c.op == op)


@dataclass(frozen=True)
class Context:
    """What planning needs besides the file and the state."""

    base_dir: Path  # file: references are relative to it
    registry: ProviderRegistry  # OAuth providers (their IMAP/SMTP servers, known keys)
    api_providers: Mapping[str, str]  # API connector → its provider
    environ: Mapping[str, str] | None = None
    prune: bool = False
    prune_tenants: bool = False


def build_plan(file: AccountsFile, snapshot: Snapshot, ctx: Context) -> Plan:
    changes: list[Change] = []
    for t, spec in enumerate(file.tenants):
        current = snapshot.tenants.get(spec.name)
        if current is None:
            changes.append(Change("+", "tenant", spec.name, spec.name))
        changes += _tenant_children(f"tenants[{t}]", spec, current, ctx)
    if ctx.prune_tenants:
        declared = {t.name for t in file.tenants}
        for name in sorted(set(snapshot.tenants) - declared):
            gone = snapshot.tenants[name]
            what = (
                f"with {len(gone.mailboxes)} mailboxes, {len(gone.webhooks)} webhooks, "
                f"{len(gone.apps)} OAuth apps"
            )
            changes.append(Change("-", "tenant", name, name, (what,), target=gone.tenant.id))
    return Plan(tuple(changes))


def _tenant_children(path: str, spec: TenantSpec, current: TenantState | None, ctx: Context) -> list[Change]:
    name = spec.name
    apps = {a.provider: a for a in current.apps} if current else {}
    hooks = {w.url: w for w in current.webhooks} if current else {}
    boxes = {email_key(m.email): m for m in current.mailboxes} if current else {}
    out: list[Change] = []
    if spec.jwt is not None:
        out += _jwt_change(f"{path}.jwt", name, spec.jwt, current, ctx)
    for i, app in enumerate(spec.oauth_apps):
        out += _app_change(f"{path}.oauth_apps[{i}]", name, app, current, ctx)
    for i, hook in enumerate(spec.webhooks):
        out += _webhook_change(f"{path}.webhooks[{i}]", name, hook, hooks.get(hook.url), ctx)
    for i, box in enumerate(spec.mailboxes):
        out += _mailbox_change(f"{path}.mailboxes[{i}]", name, box, boxes.get(box.key), ctx)
    if ctx.prune and current is not None:
        keep_boxes = {m.key for m in spec.mailboxes}
        for key in sorted(set(boxes) - keep_boxes):
            out.append(Change("-", "mailbox", name, boxes[key].email, target=boxes[key].id))
        for url in sorted(set(hooks) - {w.url for w in spec.webhooks}):
            out.append(Change("-", "webhook", name, url, target=hooks[url].id))
        for provider in sorted(set(apps) - {a.provider for a in spec.oauth_apps}):
            out.append(Change("-", "oauth_app", name, provider, target=provider))
        if spec.jwt is None and current.jwt is not None:
            out.append(Change("-", "jwt", name, current.jwt.kind))
    return out


# --------------------------------------------------------------------------- the JWT verifier


def _jwt_change(
    path: str, tenant: str, spec: JwtSpec, state: TenantState | None, ctx: Context
) -> list[Change]:
    current = state.jwt if state else None
    secret: Secret | None = None
    if spec.secret is not None and spec.secret.keeps_stored:
        if current is None or current.secret is None:
            raise _nothing_stored(f"{path}.secret", "JWT verifier", current is None)
    elif spec.secret is not None:
        secret = _resolve(spec.secret, f"{path}.secret", ctx)
    values = spec.model_dump(exclude={"secret"}) | {"secret": secret.reveal() if secret else None}
    settings = _model(path, JwtSettings, values)  # None secret on an hs256 verifier: the stored one stays
    if current is None:
        return [Change("+", "jwt", tenant, spec.kind, payload=settings)]
    details = _diff(jwt_view(current), jwt_view(settings))
    if secret is not None and not _same(current.secret, secret):
        details.append("secret: changed")
    if not details:
        return []
    return [Change("~", "jwt", tenant, spec.kind, tuple(details), payload=settings)]


# --------------------------------------------------------------------------- OAuth apps


def _app_change(
    path: str, tenant: str, spec: OAuthAppSpec, state: TenantState | None, ctx: Context
) -> list[Change]:
    _checked(f"{path}.provider", lambda: ctx.registry.get(spec.provider))
    stored = next((a for a in state.apps if a.provider == spec.provider), None) if state else None
    stored_secret = state.app_secrets.get(spec.provider) if state else None
    secret, details = stored_secret, []
    if spec.client_secret is None:
        secret = None
        if stored is not None and stored.has_secret:
            details.append("client_secret: removed")
    elif spec.client_secret.keeps_stored:
        if stored_secret is None:
            raise _nothing_stored(f"{path}.client_secret", "OAuth app", stored is None)
    else:
        secret = _resolve(spec.client_secret, f"{path}.client_secret", ctx)
        if stored is not None and not _same(stored_secret, secret):
            details.append("client_secret: changed")
    payload = {"client_id": spec.client_id, "client_secret": secret, "directory_tenant": spec.tenant}
    if stored is None:
        return [Change("+", "oauth_app", tenant, spec.provider, target=spec.provider, payload=payload)]
    details = _diff(app_view(stored), {"client_id": spec.client_id, "tenant": spec.tenant}) + details
    if not details:
        return []
    return [
        Change("~", "oauth_app", tenant, spec.provider, tuple(details), target=spec.provider, payload=payload)
    ]


# --------------------------------------------------------------------------- webhooks


def _webhook_change(path: str, tenant: str, spec: WebhookSpec, current: Any, ctx: Context) -> list[Change]:
    secret: Secret | None = None
    if spec.secret.keeps_stored:
        if current is None:
            raise _nothing_stored(f"{path}.secret", "webhook", True)
    else:
        resolved = _resolve(spec.secret, f"{path}.secret", ctx)
        secret = _checked(f"{path}.secret", lambda: check_secret(resolved.reveal()))
    batch_size = spec.batch_size or 1
    desired: View = {"events": spec.events, "description": spec.description, "batch_size": batch_size}
    if spec.enabled is not None:
        desired["enabled"] = spec.enabled
    if current is None:
        values = {
            "url": spec.url,
            "events": spec.events,
            "description": spec.description,
            "batch_size": batch_size,
        }
        body = _model(path, WebhookCreate, values | {"secret": secret.reveal() if secret else None})
        then = WebhookUpdate(enabled=False) if spec.enabled is False else None
        return [Change("+", "webhook", tenant, spec.url, payload=body, then=then)]
    have = webhook_view(current)
    details = _diff({k: have[k] for k in desired}, desired)
    fields = {k: desired[k] for k in desired if desired[k] != have[k]}
    if secret is not None and not _same(current.secret, secret):
        details.append("secret: changed")
        fields["secret"] = secret.reveal()
    if not fields:
        return []
    return [
        Change(
            "~", "webhook", tenant, spec.url, tuple(details), target=current.id,
            payload=_model(path, WebhookUpdate, fields),
        )
    ]  # fmt: skip


# --------------------------------------------------------------------------- mailboxes


def _mailbox_change(path: str, tenant: str, spec: MailboxSpec, current: Any, ctx: Context) -> list[Change]:
    password: Secret | None = None
    if spec.password is not None and not spec.password.keeps_stored:
        password = _resolve(spec.password, f"{path}.password", ctx)
    elif spec.password is not None and current is None:
        raise _nothing_stored(f"{path}.password", "mailbox", True)
    body = _mailbox_body(path, spec, password, ctx)
    settings = body.settings.to_model() if body.settings else ProcessingSettings()
    desired: View = {
        "label": body.label or None,
        "purpose": body.purpose,
        "owner": body.owner or None,
        "imap": server_view(body.imap.to_model()) if body.imap else None,
        "smtp": server_view(body.smtp.to_model()) if body.smtp else None,
        "pop3": server_view(body.pop3.to_model()) if body.pop3 else None,
        "settings": settings_view(settings),
    }
    if spec.auth is AuthMethod.OAUTH2:  # a server the file leaves out is the provider's (sign-in sets it)
        for name in ("imap", "smtp"):
            if getattr(spec, name) is None:
                desired.pop(name)
    if spec.enabled is not None:
        desired["enabled"] = spec.enabled
    if current is None:
        _checked(path, lambda: _check_new(body, settings, password, ctx))
        then = MailboxUpdate(enabled=False) if spec.enabled is False else None
        return [Change("+", "mailbox", tenant, spec.email, payload=body, then=then)]
    for name, have_value, want in (
        ("connector", current.connector, spec.connector),
        ("auth", current.auth_method, spec.auth),
    ):
        if have_value != want:
            raise DeclarationInvalidError(
                f"{path}.{name}: mailbox {current.email} has {name} {have_value}, the file says {want}; "
                f"the {name} of a mailbox cannot change",
                hint="Remove the mailbox from the file and apply with --prune, then add it back.",
                field=f"{path}.{name}",
            )
    have = mailbox_view(current)
    changed = [name for name in desired if desired[name] != have[name]]
    details = _diff({k: have[k] for k in desired}, desired)
    if password is not None and not _same(current.password, password):
        details.append("password: changed")
        changed.append("password")
    if not changed:
        return []
    payload = _mailbox_update(path, changed, body, spec, current.connector, password)
    return [Change("~", "mailbox", tenant, current.email, tuple(details), target=current.id, payload=payload)]


def _mailbox_body(path: str, spec: MailboxSpec, password: Secret | None, ctx: Context) -> MailboxCreate:
    imap, smtp = spec.imap, spec.smtp
    if spec.auth is AuthMethod.OAUTH2 and spec.provider is not None:
        provider = _checked(f"{path}.provider", lambda: ctx.registry.get(spec.provider or ""))
        expected = ctx.api_providers.get(spec.connector)
        if expected is not None and expected != spec.provider:
            raise DeclarationInvalidError(
                f"{path}.provider: the {spec.connector} connector is {expected}'s, not {spec.provider}'s",
                field=f"{path}.provider",
            )
        if spec.connector == "imap" and imap is None:
            imap = ServerIn.model_validate(provider.imap.model_dump())
            if smtp is None and provider.smtp is not None:
                smtp = ServerIn.model_validate(provider.smtp.model_dump())
    values: dict[str, Any] = {
        "email": spec.email,
        "label": spec.label,
        "purpose": spec.purpose,
        "connector": spec.connector,
        "auth_method": spec.auth,
        "imap": imap,
        "smtp": smtp,
        "settings": spec.settings,
        "owner": spec.owner,
        "password": None if password is None else password.reveal(),
    }
    if spec.pop3 is not None:
        values["pop3"] = spec.pop3
    return _model(path, MailboxCreate, values)


def _check_new(
    body: MailboxCreate, settings: ProcessingSettings, password: Secret | None, ctx: Context
) -> None:
    """The checks the mailbox service makes before it writes, made before the first write."""
    check_connector_fields(body, ctx.api_providers)
    check_credentials(body.auth_method, password)
    check_action(body.connector, settings.after_processing)
    check_folders(body.connector, settings.folders)
    check_contacts(body.connector, settings.contacts)


def _mailbox_update(
    path: str,
    changed: list[str],
    body: MailboxCreate,
    spec: MailboxSpec,
    connector: str,
    password: Secret | None,
) -> MailboxUpdate:
    values: dict[str, Any] = {}
    for name in ("label", "purpose", "owner"):
        if name in changed:
            values[name] = getattr(body, name)
    for name in ("imap", "smtp", "pop3"):  # every field sent, so a pin left out is removed, not kept
        if name in changed:
            server = getattr(body, name)
            values[name] = None if server is None else ServerIn.model_validate(server.model_dump())
    if "enabled" in changed:
        values["enabled"] = spec.enabled
    if "settings" in changed:
        values["settings"] = _settings_patch(spec)
    if "password" in changed and password is not None:
        values["password"] = password.reveal()
    update = _model(path, MailboxUpdate, values)
    _checked(path, lambda: check_action(connector, spec.settings.after_processing))
    return update


def _settings_patch(spec: MailboxSpec) -> SettingsPatch:
    """The whole of the declared settings, as a patch that sets every field."""
    declared = spec.settings
    contacts = declared.contacts
    return SettingsPatch(
        from_name=declared.from_name,
        check_interval=declared.check_interval,
        after_processing=declared.after_processing,
        folders=declared.folders or [declared.folder],
        sending=SendingPatch.model_validate((declared.sending or SendingIn()).model_dump()),
        contacts=ContactsPatch.model_validate(contacts.model_dump()) if contacts else None,
    )


# --------------------------------------------------------------------------- helpers


def _resolve(ref: SecretRef, field: str, ctx: Context) -> Secret:
    """The secret of an env: or file: reference (callers handle ``stored`` first)."""
    value = resolve(ref, field=field, base_dir=ctx.base_dir, environ=ctx.environ)
    assert value is not None
    return value


def _same(stored: Secret | None, declared: Secret) -> bool:
    """Compared in constant time, decrypted only now (a sealed secret)."""
    if stored is None:
        return False
    return hmac.compare_digest(stored.reveal().encode(), declared.reveal().encode())


def _nothing_stored(field: str, what: str, missing: bool) -> SecretReferenceError:
    why = f"the {what} does not exist yet" if missing else f"the {what} has no secret stored"
    return SecretReferenceError(
        f"{field}: stored: {why}, so there is nothing to keep",
        hint="Give the secret as env:NAME or file:PATH.",
        field=field,
    )


def _model(path: str, model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """``model`` from ``values``; the API's refusal, with the file's path (input never shown)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors(include_input=False, include_url=False)[0]
        loc = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise DeclarationInvalidError(f"{path}.{loc}: {message}" if loc else f"{path}: {message}") from None


T = TypeVar("T")


def _checked(path: str, check: Callable[[], T]) -> T:
    """Run a service's check; its refusal says where in the file."""
    try:
        return check()
    except DeclarationInvalidError:
        raise
    except MailportError as exc:
        where = f"{path}.{exc.details['field']}" if exc.details.get("field") else path
        raise DeclarationInvalidError(f"{where}: {exc.message}", hint=exc.hint, field=where) from None


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``field: old → new`` for every leaf that differs (nested blocks by their path)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in new:
            out += _diff(old.get(key), new[key], f"{prefix}.{key}" if prefix else key)
        return out
    if old == new:
        return []
    return [f"{prefix}: {_show(old)} → {_show(new)}"]


def _show(value: Any) -> str:
    if isinstance(value, dict) and "host" in value:  # a server: the short form
        return f"{value['host']}:{value['port']} {value['security']}"
    return json.dumps(value, ensure_ascii=False)
