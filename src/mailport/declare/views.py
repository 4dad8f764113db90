"""One comparable form for what the file declares and what the service holds.

Both sides go through the same conversions the API uses (:class:`ServerIn` → ``ServerSettings``,
:class:`SettingsIn` → ``ProcessingSettings``) and are then compared as plain data, so defaults and
normalisations (a trimmed label, a certificate's PEM, ``folder`` vs ``folders``) never show up
as a change. ``spec_of_*`` go the other way, for ``mailport export``: what they produce is
declared again as exactly the same view, so applying an export changes nothing.
"""

from __future__ import annotations

from typing import Any

from mailport.auth.models import JwtVerifier
from mailport.auth.schemas import JwtSettings
from mailport.declare.model import JwtSpec, MailboxSpec, OAuthAppSpec, WebhookSpec
from mailport.declare.secrets import STORED
from mailport.delivery.models import EndpointStatus, WebhookEndpoint
from mailport.mailboxes.models import AuthMethod, Mailbox, MailboxStatus, ProcessingSettings, ServerSettings
from mailport.mailboxes.schemas import ContactsIn, SendingIn, ServerIn, SettingsIn
from mailport.oauth.repository import StoredApp
from mailport.sending.models import SendingSettings

View = dict[str, Any]


def server_view(server: ServerSettings | None) -> View | None:
    return None if server is None else ServerIn.from_model(server).model_dump(mode="json")


def settings_view(settings: ProcessingSettings) -> View:
    return {
        "from_name": settings.from_name or None,
        "check_interval": settings.check_interval,
        "after_processing": settings.after_processing,
        "folders": [w.spec for w in settings.watched],
        "sending": settings.sending.to_json(),
        "contacts": settings.contacts.to_json() if settings.contacts else None,
    }


def mailbox_view(mailbox: Mailbox) -> View:
    """What a mailbox's declaration is compared on (its secret apart)."""
    return {
        "label": mailbox.label or None,
        "purpose": mailbox.purpose,
        "owner": mailbox.owner,
        "imap": server_view(mailbox.imap),
        "smtp": server_view(mailbox.smtp),
        "pop3": server_view(mailbox.pop3),
        "settings": settings_view(mailbox.settings),
        "enabled": mailbox.health.status is not MailboxStatus.DISABLED,
    }


def webhook_view(endpoint: WebhookEndpoint) -> View:
    return {
        "events": None if endpoint.events is None else list(endpoint.events),
        "description": endpoint.description or None,
        "batch_size": endpoint.batch_size,
        "enabled": endpoint.status is not EndpointStatus.DISABLED,
    }


JWT_FIELDS = (
    "kind",
    "jwks_url",
    "algorithms",
    "issuer",
    "audience",
    "leeway_seconds",
    "owner_claim",
    "tenant_claim",
    "tenant_value",
)


def jwt_view(verifier: JwtVerifier | JwtSettings) -> View:
    return {name: list(v) if isinstance(v := getattr(verifier, name), tuple) else v for name in JWT_FIELDS}


def spec_of_jwt(verifier: JwtVerifier) -> JwtSpec:
    return JwtSpec.model_validate({**jwt_view(verifier), "secret": STORED if verifier.has_secret else None})


def app_view(app: StoredApp) -> View:
    return {"client_id": app.client_id, "tenant": app.directory_tenant}


# --------------------------------------------------------------------------- export


def spec_of_mailbox(mailbox: Mailbox) -> MailboxSpec:
    oauth = mailbox.auth_method is AuthMethod.OAUTH2
    provider = mailbox.provider_id or (mailbox.oauth.provider if mailbox.oauth else None)
    return MailboxSpec.model_validate(
        {
            "email": mailbox.email,
            "connector": mailbox.connector,
            "auth": mailbox.auth_method,
            "provider": provider if oauth else None,
            "password": STORED if mailbox.has_password and not oauth else None,
            "label": mailbox.label or None,
            "purpose": mailbox.purpose,
            "owner": mailbox.owner,
            "imap": ServerIn.from_model(mailbox.imap) if mailbox.imap else None,
            "smtp": ServerIn.from_model(mailbox.smtp) if mailbox.smtp else None,
            "pop3": ServerIn.from_model(mailbox.pop3) if mailbox.pop3 else None,
            "settings": settings_in(mailbox.settings),
            "enabled": False if mailbox.health.status is MailboxStatus.DISABLED else None,
        }
    )


def settings_in(settings: ProcessingSettings) -> SettingsIn:
    watched = [w.spec for w in settings.watched]
    contacts = settings.contacts
    return SettingsIn.model_validate(
        {
            "from_name": settings.from_name,
            "check_interval": settings.check_interval,
            "folder": watched[0],
            "after_processing": settings.after_processing,
            "folders": watched if len(watched) > 1 else None,
            "sending": None
            if settings.sending == SendingSettings()
            else SendingIn.model_validate(settings.sending.to_json()),
            "contacts": ContactsIn.model_validate(contacts.to_json()) if contacts else None,
        }
    )


def spec_of_webhook(endpoint: WebhookEndpoint) -> WebhookSpec:
    return WebhookSpec.model_validate(
        {
            "url": endpoint.url,
            "events": None if endpoint.events is None else list(endpoint.events),
            "secret": STORED,
            "description": endpoint.description or None,
            "batch_size": None if endpoint.batch_size == 1 else endpoint.batch_size,
            "enabled": False if endpoint.status is EndpointStatus.DISABLED else None,
        }
    )


def spec_of_app(app: StoredApp) -> OAuthAppSpec:
    return OAuthAppSpec.model_validate(
        {
            "provider": app.provider,
            "client_id": app.client_id,
            "client_secret": STORED if app.has_secret else None,
            "tenant": app.directory_tenant,
        }
    )
