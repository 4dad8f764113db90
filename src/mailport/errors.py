"""The one error tree of mailport.

Every failure a user can meet is a :class:`MailportError` with a stable machine-readable
``code``, the HTTP status the API answers with, and a ``hint`` that tells a person what to do.
The API renders ``{"error": code, "detail": message, "hint": hint}``; the CLI prints the
message and the hint on one line; ``docs/troubleshooting.md`` has a section per code.

Foreign exceptions (ssl, socket, asyncio, SQLAlchemy, httpx, aiosmtplib …) are translated
once, at the boundary where they occur, and chained (``raise X(...) from exc``).

::

    MailportError                       code                 http
    ├── ConfigurationError              config_invalid        500
    │   ├── SecretKeyError              secret_key_invalid    500
    │   └── DatabaseNotMigratedError    database_not_migrated 500
    ├── InputError                      invalid_input         422
    │   ├── InvalidEmailError           invalid_email         422
    │   ├── InvalidCursorError          invalid_cursor        422
    │   ├── SenderNotAllowedError       sender_not_allowed    422
    │   ├── TooManyWatchedFoldersError  too_many_watched_folders 422 (past the account's connections)
    │   └── HostNotAllowedError         host_not_allowed      422
    ├── UnauthorizedError               unauthorized          401
    ├── ForbiddenError                  forbidden             403
    ├── NotFoundError                   not_found             404
    │   ├── MessageNotFoundError        message_not_found     404   (gone from the server)
    │   ├── FolderNotFoundError         folder_not_found      404
    │   ├── ThreadNotFoundError         thread_not_found      404   (a thread key never handed out)
    │   ├── SendNotFoundError           send_not_found        404
    │   ├── ContactNotFoundError        contact_not_found     404
    │   ├── ContactGroupNotFoundError   contact_group_not_found 404
    │   └── AttachmentNotFoundError     attachment_not_found  404
    ├── ConflictError                   conflict              409
    │   ├── FolderExistsError           folder_exists         409
    │   ├── IdempotencyKeyReusedError   idempotency_key_reused 409  (the same key, another request)
    │   ├── SendNotCancellableError     send_not_cancellable  409
    │   ├── ContactExistsError          contact_exists        409
    │   ├── ContactGroupExistsError     contact_group_exists  409
    │   ├── ContactBookMismatchError    contact_book_mismatch 409   (two owners' contacts)
    │   └── ContactsNotEnabledError     contacts_not_enabled  409   (the mailbox harvests nothing)
    ├── CursorExpiredError              cursor_expired        410   (the folder was reset)
    ├── RateLimitedError                rate_limited          429
    ├── MailboxBusyError                mailbox_busy          503   (the command pool stayed busy)
    ├── UnsupportedFeatureError         unsupported_feature   422
    │   ├── ImapSettingsMissingError    imap_not_configured   422   (the mailbox has no IMAP server)
    │   ├── TrashFolderMissingError     trash_folder_missing  422   (delete without `permanent`, no trash)
    │   ├── SmtpNotConfiguredError      smtp_not_configured   422   (the mailbox cannot send)
    │   └── SMTPUTF8UnsupportedError    smtputf8_unsupported  422   (UTF-8 addresses, server without SMTPUTF8)
    └── ProviderError                   provider_error        502   (a mail server or provider failed)
        ├── ConnectError                connect_failed        502
        │   ├── HostNotFoundError               host_not_found                 502
        │   ├── ConnectionRefusedByServerError  connection_refused             502
        │   └── TooManyConnectionsError         too_many_connections           503
        ├── TLSError                    tls_failed            502
        │   ├── CertificateHostnameMismatchError certificate_hostname_mismatch 502
        │   ├── CertificateSelfSignedError      certificate_self_signed        502
        │   ├── CertificateUntrustedError       certificate_untrusted          502
        │   ├── CertificateExpiredError         certificate_expired            502
        │   ├── CertificateChangedError         certificate_changed            502
        │   ├── StartTLSNotOfferedError         starttls_not_offered           502
        │   ├── TLSOnPlaintextPortError         tls_on_plaintext_port          502
        │   └── PlaintextOnTLSPortError         plaintext_on_tls_port          502
        ├── AuthenticationError         auth_failed           422
        │   ├── InvalidCredentialsError         invalid_credentials            422
        │   ├── AppPasswordRequiredError        app_password_required          422
        │   ├── WebLoginRequiredError           web_login_required             422
        │   ├── BasicAuthBlockedError           basic_auth_blocked             422
        │   ├── SMTPAuthDisabledError           smtp_auth_disabled             422
        │   ├── IMAPDisabledError               imap_disabled                  422
        │   ├── AuthMechanismUnsupportedError   auth_mechanism_unsupported     422
        │   ├── OAuthTokenRejectedError         oauth_token_rejected           422
        │   ├── OAuthPermissionMissingError     oauth_permission_missing       422
        │   └── MailboxAccessDeniedError        mailbox_access_denied          422
        ├── AuthUnavailableError        auth_unavailable      503   (the server could not check now: retried)
        ├── CommandError                command_failed        502
        ├── ProtocolError               protocol_error        502
        │   └── WrongServiceError               wrong_service                  502
        ├── ConnectionLostError         connection_lost       502
        ├── MailTimeoutError            timeout               504   (also a builtin TimeoutError)
        │   ├── ConnectTimeoutError             connect_timeout                504
        │   └── ServerSilentError               server_silent                  504
        ├── MailboxUnreachableError     mailbox_unreachable   503   (a live request found no server)
        ├── MessageTooLargeError        message_too_large     413
        ├── SMTPRejectedError           smtp_rejected         502
        ├── SendRefusedError            send_refused          502   (a mail API refused a send)
        └── InsecureAuthRefusedError    insecure_auth_refused 422   (imap/smtp)

    oauth:
    ProviderError
    └── OAuthError                      oauth_error            502   (an authorization server refused)
        ├── OAuthDeniedError            oauth_denied           403   (the user or provider said no)
        ├── OAuthInvalidGrantError      oauth_invalid_grant    422   (code, verifier or refresh token refused)
        │   └── ReauthRequiredError     reauth_required        422   (the mailbox must be reconnected)
        ├── OAuthClientRejectedError    oauth_client_rejected  502   (the app's client id/secret refused)
        ├── OAuthUnavailableError       oauth_unavailable      503   (network/5xx: retriable, not auth)
        ├── OAuthIdentityError          oauth_identity_invalid 502   (id_token/userinfo unusable)
        └── DeviceCodeExpiredError      oauth_device_expired   410
    ConfigurationError
    └── OAuthProvidersFileError         oauth_providers_file_invalid 500
    InputError
    ├── OAuthStateInvalidError          oauth_state_invalid    400
    ├── OAuthStateExpiredError          oauth_state_expired    400
    ├── OAuthStateReplayedError         oauth_state_replayed   400
    └── OAuthBrowserMismatchError       oauth_browser_mismatch 400   (finished in another browser)
    ConflictError
    └── OAuthAccountMismatchError       oauth_account_mismatch 409   (reconnected as another account)
    NotFoundError
    └── OAuthProviderUnknownError       oauth_provider_unknown 404
    UnsupportedFeatureError
    └── DeviceFlowUnsupportedError      oauth_device_flow_unsupported 422
    MailportError
    └── OAuthNotConfiguredError         oauth_not_configured   422

    web:
    ForbiddenError
    └── CSRFError                       csrf_failed            403
    InputError
    ├── ConnectLinkInvalidError         connect_link_invalid   400
    ├── ConnectLinkExpiredError         connect_link_expired   410
    └── ConnectLinkUsedError            connect_link_used      410
    ingestion:
    NotFoundError
    ├── RawSourceNotStoredError         raw_not_stored         404   (oversized: headers only)
    └── MessageSourceExpiredError       message_source_expired 410   (retention: the janitor dropped it)
    leases (mailport.leases):
    ConflictError
    └── LeaseLostError                  lease_lost             409   (another process holds it now)
    HTTP server (api.limits, api.server):
    InputError
    ├── RequestTooLargeError            request_too_large      413   (MAILPORT_MAX_REQUEST_BYTES)
    └── RequestHeadersTooLargeError     request_headers_too_large 431 (64 KiB)
    MailportError
    └── ServerBusyError                 server_busy            503   (MAILPORT_MAX_CONNECTIONS)
    ConfigurationError
    └── AddressInUseError               address_in_use         500   (serve: the port is taken)
    push notifications (connectors.push, push):
    NotFoundError
    └── UnknownConnectorError           unknown_connector      404   (no push receiver by that key)
    UnauthorizedError
    └── PushUnauthenticatedError        push_unauthenticated   401   (unknown channel or wrong secret)
    InputError
    └── PushInvalidError                push_invalid           400   (not a notification of that connector)
    declarative accounts (declare):
    InputError
    └── DeclarationInvalidError         declaration_invalid    422   (the accounts file is refused)
        ├── InlineSecretError           inline_secret          422   (a secret written into the file)
        └── SecretReferenceError        secret_reference_unresolved 422 (env:/file: names nothing)
    host-app JWTs (auth):
    UnauthorizedError
    └── TokenRejectedError              invalid_token          401   (bad signature, malformed, ambiguous)
        ├── TokenExpiredError           token_expired          401
        ├── TokenNotYetValidError       token_not_yet_valid    401   (nbf, or iat in the future)
        ├── TokenIssuerError            token_issuer           401   (no tenant accepts that issuer)
        ├── TokenAudienceError          token_audience         401
        ├── TokenAlgorithmError         token_algorithm        401   (alg none, HS/RS confusion)
        ├── TokenKeyUnknownError        token_key_unknown      401   (kid not in the JWKS after a refresh)
        └── TokenClaimsError            token_claims           401   (no owner claim, tenant claim mismatch)
    ForbiddenError
    └── OwnerForbiddenError             owner_forbidden        403   (a user's JWT on tenant-wide routes)
    ProviderError
    └── JwksUnavailableError            jwks_unavailable       503   (the tenant's JWKS could not be fetched)
    typed HTTP client (mailport.client):
    UnauthorizedError
    └── WebhookSignatureError           webhook_signature_invalid 401 (verify_webhook refused a delivery)
    the fleet of workers (fleet, /v1/workers):
    NotFoundError
    └── WorkerNotFoundError             worker_not_found       404   (no worker registered under that id)

Later areas add their own subclasses in the sections marked below; keep the drawing true.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MailportError(Exception):
    """Base of every error mailport raises on purpose."""

    code: ClassVar[str] = "mailport_error"
    http_status: ClassVar[int] = 500
    hint: str = "See docs/troubleshooting.md."

    def __init_subclass__(
        cls,
        *,
        code: str | None = None,
        http_status: int | None = None,
        hint: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Each error names its code, status and hint in its class line, so the tree reads as a
        table; what a class leaves out it inherits."""
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code
        if http_status is not None:
            cls.http_status = http_status
        if hint is not None:
            cls.hint = hint

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        server_said: str | None = None,
        code: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint
        self.server_said = server_said
        if code is not None:
            # A more specific stable code for the same class (e.g. troubleshooting codes).
            self.code = code  # type: ignore[misc]
        self.details = details

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def to_dict(self) -> dict[str, Any]:
        """The API's error body."""
        body: dict[str, Any] = {"error": self.code, "detail": self.message, "hint": self.hint}
        if self.server_said:
            body["server_said"] = self.server_said
        body.update({k: v for k, v in self.details.items() if v is not None})
        return body


# --------------------------------------------------------------------------- configuration


class ConfigurationError(
    MailportError,
    code="config_invalid",
    http_status=500,
    hint="Check the MAILPORT_* environment variables (see .env.example).",
): ...


class SecretKeyError(
    ConfigurationError,
    code="secret_key_invalid",
    hint="MAILPORT_SECRET_KEYS must hold the key that encrypted the stored secrets "
    "(comma-separated Fernet keys, the first encrypts; `mailport keys generate` makes one).",
): ...


# --------------------------------------------------------------------------- client input


class InputError(
    MailportError, code="invalid_input", http_status=422, hint="Correct the request and try again."
): ...


class InvalidEmailError(
    InputError, code="invalid_email", hint="Enter a complete email address such as support@example.com."
): ...


class HostNotAllowedError(
    InputError,
    code="host_not_allowed",
    hint="The host resolves to a private, loopback or link-local address. An operator can allow it "
    "with MAILPORT_ALLOW_PRIVATE_HOSTS=true or MAILPORT_ALLOWED_HOSTS.",
): ...


class TooManyWatchedFoldersError(
    InputError,
    code="too_many_watched_folders",
    hint="Watch fewer folders of this account (settings.folders): each takes one of the "
    "connections the provider allows per account.",
):
    """A watched folder past what the account's connection limit leaves
    (:mod:`mailport.mailboxes.connection_limits`); its watcher does not connect."""


class UnauthorizedError(
    MailportError,
    code="unauthorized",
    http_status=401,
    hint="Send an API key as `Authorization: Bearer <key>`.",
): ...


class ForbiddenError(
    MailportError,
    code="forbidden",
    http_status=403,
    hint="This key may not do that; use the admin key or a key of the right tenant.",
): ...


class NotFoundError(
    MailportError,
    code="not_found",
    http_status=404,
    hint="Check the id; it may have been deleted or belong to another tenant.",
): ...


class MessageNotFoundError(
    NotFoundError,
    code="message_not_found",
    hint="The message is gone from the server (moved, deleted, or its folder was reset); "
    "list the folder again for current refs.",
): ...


class FolderNotFoundError(
    NotFoundError,
    code="folder_not_found",
    hint="Use a `path` exactly as GET /v1/mailboxes/{id}/folders lists it.",
): ...


class ThreadNotFoundError(
    NotFoundError,
    code="thread_not_found",
    hint="Use a `thread_key` exactly as a listing, a search or a message.received event of this "
    "mailbox gave it.",
): ...


class ConflictError(
    MailportError,
    code="conflict",
    http_status=409,
    hint="The resource already exists or changed meanwhile; reload it and try again.",
): ...


class FolderExistsError(
    ConflictError,
    code="folder_exists",
    hint="A folder with that name already exists there; pick another name or use the existing one.",
): ...


class CursorExpiredError(
    MailportError,
    code="cursor_expired",
    http_status=410,
    hint="The folder was reset on the server since this cursor was made (UIDVALIDITY changed); "
    "start again without a cursor.",
): ...


class RateLimitedError(
    MailportError,
    code="rate_limited",
    http_status=429,
    hint="Too many requests; wait a moment and try again.",
): ...


class UnsupportedFeatureError(
    MailportError,
    code="unsupported_feature",
    http_status=422,
    hint="This mailbox's connector or server does not support that feature.",
):
    """Raised instead of silently dropping a feature a connector or server cannot do."""


class ImapSettingsMissingError(UnsupportedFeatureError):
    """An operation that speaks IMAP met a mailbox stored without IMAP settings."""

    code = "imap_not_configured"
    hint = (
        "This mailbox has no IMAP server settings: give it `imap` settings "
        "(PATCH /v1/mailboxes/{id}), or use what its connector offers instead."
    )


class TrashFolderMissingError(
    UnsupportedFeatureError,
    code="trash_folder_missing",
    hint="Deleting moves messages to the folder with the `trash` role, and this mailbox has none: "
    "create one (a folder named Trash), or delete with `permanent=true` to expunge for good.",
):
    """A delete without ``permanent`` met a mailbox without a trash folder (never expunged
    silently instead)."""


# --------------------------------------------------------------------------- sending


class SmtpNotConfiguredError(
    UnsupportedFeatureError,
    code="smtp_not_configured",
    hint="This mailbox has no SMTP server settings: give it `smtp` settings "
    "(PATCH /v1/mailboxes/{id}) to send from it.",
):
    """A send met a mailbox that cannot send (no SMTP server, no sending connector)."""


class SMTPUTF8UnsupportedError(
    UnsupportedFeatureError,
    code="smtputf8_unsupported",
    hint="The message has a non-ASCII address (in the envelope or the headers) and the SMTP server "
    "does not offer SMTPUTF8 (RFC 6531); send to and from ASCII addresses, or through a server "
    "that offers SMTPUTF8.",
):
    """A message that needs SMTPUTF8 met a server without it: never downgraded silently."""


class SenderNotAllowedError(
    InputError,
    code="sender_not_allowed",
    hint="Send from the mailbox's own address or one of its aliases "
    "(settings.sending.aliases, PATCH /v1/mailboxes/{id}).",
):
    """``from`` named an address the mailbox may not send as."""


class IdempotencyKeyReusedError(
    ConflictError,
    code="idempotency_key_reused",
    hint="This Idempotency-Key was used in the last 24 hours with a different request; "
    "use a new key for a new message.",
):
    """The same Idempotency-Key with another body (the first request's result stands)."""


class SendNotFoundError(
    NotFoundError,
    code="send_not_found",
    hint="Use a send `id` (snd_…) as POST /v1/mailboxes/{id}/send or GET …/outbox gave it.",
): ...


class SendNotCancellableError(
    ConflictError,
    code="send_not_cancellable",
    hint="Only a send still scheduled or queued can be cancelled; this one is being sent or is done.",
): ...


class AttachmentNotFoundError(
    NotFoundError,
    code="attachment_not_found",
    hint="Name an attachment `id` exactly as GET /v1/mailboxes/{id}/messages/{ref} lists it.",
): ...


# --------------------------------------------------------------------------- contacts


class ContactNotFoundError(
    NotFoundError,
    code="contact_not_found",
    hint="Use a contact `id` (ct_…) as GET /v1/contacts lists it; a merged contact's id is gone, "
    "use the id it was merged into.",
): ...


class ContactGroupNotFoundError(
    NotFoundError,
    code="contact_group_not_found",
    hint="Use a group `id` (cg_…) as GET /v1/contacts/groups lists it.",
): ...


class ContactExistsError(
    ConflictError,
    code="contact_exists",
    hint="That address already belongs to a contact (named in the message); update or merge "
    "that contact instead.",
): ...


class ContactGroupExistsError(
    ConflictError,
    code="contact_group_exists",
    hint="A group of that name exists in this contact book; choose another name or use it.",
): ...


class ContactBookMismatchError(
    ConflictError,
    code="contact_book_mismatch",
    hint="Contacts and groups of different owners never mix: merge or group only contacts of "
    "one owner's book.",
): ...


class ContactsNotEnabledError(
    ConflictError,
    code="contacts_not_enabled",
    hint="Switch harvesting on first: set `settings.contacts` on the mailbox "
    "(PATCH /v1/mailboxes/{id}, or `mailport mailboxes update --contacts`).",
): ...


# --------------------------------------------------------------------------- mail servers


class ProviderError(
    MailportError,
    code="provider_error",
    http_status=502,
    hint="The mail server reported an error; see the server's own text.",
):
    """A mail server or provider failed; ``server_said`` keeps its own words."""


class ConnectError(
    ProviderError,
    code="connect_failed",
    hint="Check the host name and port, and that a firewall allows the connection.",
): ...


class TLSError(
    ProviderError,
    code="tls_failed",
    hint="Check the port/security pair and the server's certificate (or give a CA file).",
): ...


class AuthenticationError(
    ProviderError,
    code="auth_failed",
    http_status=422,
    hint="Wrong user name or password, or the account needs an app password or OAuth.",
): ...


class AuthUnavailableError(
    ProviderError,
    code="auth_unavailable",
    http_status=503,
    hint="The server could not check the credentials right now (a temporary failure on its side); "
    "try again in a few minutes. mailport retries by itself. If it persists, ask the server's operator.",
):
    """The server could not check the credentials right now (IMAP ``[UNAVAILABLE]``, an SMTP
    4xx reply to AUTH): temporary, retried, never reported as a wrong password."""


class CommandError(
    ProviderError, code="command_failed", hint="The server refused the command; see the server's own text."
): ...


class ProtocolError(
    ProviderError,
    code="protocol_error",
    hint="The server sent an unexpected response; this is a server bug or not an IMAP/SMTP server.",
):
    """The server said something we cannot parse; the connection is closed (it is desynced)."""


class ConnectionLostError(
    ProviderError,
    code="connection_lost",
    hint="The server closed the connection; mailport reconnects automatically.",
): ...


class MailTimeoutError(
    ProviderError,
    TimeoutError,
    code="timeout",
    http_status=504,
    hint="The server did not answer in time; check the host and port, or try again later.",
): ...


class MailboxUnreachableError(
    ProviderError,
    code="mailbox_unreachable",
    http_status=503,
    hint="mailport could not reach the mailbox's server just now (refused, unreachable, timed out or "
    "dropped); try again later. `GET /v1/mailboxes/{id}` shows the watcher's last error.",
):
    """A live request to a mailbox's server failed for a reason on the server's or the network's
    side; the request may be retried (the API answers 503 with Retry-After)."""


class MailboxBusyError(
    MailportError,
    code="mailbox_busy",
    http_status=503,
    hint="Every command connection of this mailbox stayed busy until the request's deadline; "
    "retry after the Retry-After seconds, or send fewer requests at once.",
):
    """A live request waited for one of the mailbox's command connections (the per-mailbox
    pool beside the watcher) longer than its deadline."""


class MessageTooLargeError(
    ProviderError,
    code="message_too_large",
    http_status=413,
    hint="The message is larger than the configured maximum.",
): ...


class SMTPRejectedError(
    ProviderError,
    code="smtp_rejected",
    hint="The SMTP server rejected the message; see its reply code and text.",
):
    def __init__(self, message: str, *, smtp_code: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.smtp_code = smtp_code


# --------------------------------------------------------------------------- imap/smtp


class InsecureAuthRefusedError(
    ProviderError,
    code="insecure_auth_refused",
    http_status=422,
    hint="Use implicit TLS (IMAP 993, SMTP 465) or STARTTLS (IMAP 143, SMTP 587); sending credentials "
    "unencrypted is only possible when explicitly allowed.",
):
    """A password or token would have crossed an unencrypted connection, so mailport refused."""


# --------------------------------------------------------------------------- storage


class InvalidCursorError(
    InputError,
    code="invalid_cursor",
    hint="Pass back the `next_cursor` of the previous page unchanged, or omit `cursor` to start over.",
): ...


class DatabaseNotMigratedError(
    ConfigurationError,
    code="database_not_migrated",
    hint="Run `mailport db upgrade` against MAILPORT_DATABASE_URL (serve does it itself on SQLite).",
): ...


# --------------------------------------------------------------------------- detection

# --------------------------------------------------------------------------- check

# The connection check's troubleshooting codes (mailport.diagnosis). Each class hint is
# the general advice; a diagnosis replaces it with advice specific to the provider and to the
# server's own words.


class HostNotFoundError(
    ConnectError,
    code="host_not_found",
    hint="The host name does not exist in DNS; check its spelling (e.g. imap.example.com, not imap.example).",
): ...


class ConnectionRefusedByServerError(
    ConnectError,
    code="connection_refused",
    hint="Nothing listens on that port. IMAP is usually 993 (SSL/TLS) or 143 (STARTTLS); "
    "SMTP submission 465 (SSL/TLS) or 587 (STARTTLS).",
): ...


class TooManyConnectionsError(
    ConnectError,
    code="too_many_connections",
    http_status=503,
    hint="The account has too many open connections; close other mail programs or wait and retry.",
): ...


class CertificateHostnameMismatchError(
    TLSError,
    code="certificate_hostname_mismatch",
    hint="The server's certificate names another host; use the host name the certificate names.",
): ...


class CertificateSelfSignedError(
    TLSError,
    code="certificate_self_signed",
    hint="The server uses a self-signed certificate; trust this certificate for the server if you trust it.",
): ...


class CertificateUntrustedError(
    TLSError,
    code="certificate_untrusted",
    hint="The certificate is issued by an authority this machine does not trust; add the CA "
    "(MAILPORT_MAIL_CA_FILE).",
): ...


class CertificateExpiredError(
    TLSError,
    code="certificate_expired",
    hint="The server's certificate has expired (or is not valid yet); the server's operator must renew it.",
): ...


class CertificateChangedError(
    TLSError,
    code="certificate_changed",
    hint="The server presented a different certificate than the one trusted for this mailbox. If its "
    "operator replaced it, compare the new fingerprint with them and trust the new certificate; "
    "if it is now signed by a public CA, remove the trusted certificate. Otherwise the "
    "connection may be intercepted.",
): ...


class StartTLSNotOfferedError(
    TLSError,
    code="starttls_not_offered",
    hint="The server does not offer STARTTLS on this port; use implicit TLS (993 for IMAP, 465 for SMTP).",
): ...


class TLSOnPlaintextPortError(
    TLSError,
    code="tls_on_plaintext_port",
    hint="This port expects a plaintext greeting: use STARTTLS on it, or SSL/TLS on 993 (IMAP) / 465 (SMTP).",
): ...


class PlaintextOnTLSPortError(
    TLSError,
    code="plaintext_on_tls_port",
    hint="This port expects TLS from the first byte: choose security SSL/TLS for it.",
): ...


class InvalidCredentialsError(
    AuthenticationError,
    code="invalid_credentials",
    hint="The server refused the user name or password; check both "
    "(the user name is usually the full address).",
): ...


class AppPasswordRequiredError(
    AuthenticationError,
    code="app_password_required",
    hint="This provider accepts only an app password (not the account password) from mail programs.",
): ...


class WebLoginRequiredError(
    AuthenticationError,
    code="web_login_required",
    hint="The provider wants the account owner to sign in on its website first, then retry.",
): ...


class BasicAuthBlockedError(
    AuthenticationError,
    code="basic_auth_blocked",
    hint="The provider no longer accepts passwords for this protocol; connect with OAuth2 instead.",
): ...


class SMTPAuthDisabledError(
    AuthenticationError,
    code="smtp_auth_disabled",
    hint="Authenticated SMTP (SMTP AUTH) is turned off for this mailbox or organisation; "
    "an admin can enable it.",
): ...


class IMAPDisabledError(
    AuthenticationError,
    code="imap_disabled",
    hint="IMAP access is turned off in the mailbox's settings; enable it there.",
): ...


class AuthMechanismUnsupportedError(
    AuthenticationError,
    code="auth_mechanism_unsupported",
    hint="The server does not accept this way of signing in here (mechanism, or login without TLS).",
): ...


class OAuthTokenRejectedError(
    AuthenticationError,
    code="oauth_token_rejected",
    hint="The server refused the access token (expired, revoked or for another account); "
    "reconnect the mailbox.",
): ...


class OAuthPermissionMissingError(
    AuthenticationError,
    code="oauth_permission_missing",
    hint="The access token lacks the mail scope or the app lacks permission on this mailbox.",
): ...


class MailboxAccessDeniedError(
    AuthenticationError,
    code="mailbox_access_denied",
    hint="Signed in, but the signed-in identity may not open this mailbox; "
    "check the account and its permissions.",
): ...


class WrongServiceError(
    ProtocolError,
    code="wrong_service",
    hint="Another kind of server answers on this port; check the port number.",
): ...


class ConnectTimeoutError(
    MailTimeoutError,
    code="connect_timeout",
    hint="No answer to the connection attempt: a firewall drops it, or the host/port is wrong.",
): ...


class ServerSilentError(
    MailTimeoutError,
    code="server_silent",
    hint="The server accepted the connection but never spoke; often the port expects TLS, or a proxy hangs.",
): ...


# --------------------------------------------------------------------------- oauth


class OAuthError(
    ProviderError,
    code="oauth_error",
    hint="The OAuth provider refused the request; see its own words in server_said.",
):
    """An OAuth2 authorization server refused; ``server_said`` keeps its ``error: description``."""


class OAuthDeniedError(
    OAuthError,
    code="oauth_denied",
    http_status=403,
    hint="Access was not granted (the user declined, or an administrator blocks the app). "
    "Start the connection again and accept the requested permissions, or ask an administrator.",
): ...


class OAuthInvalidGrantError(
    OAuthError,
    code="oauth_invalid_grant",
    http_status=422,
    hint="The provider refused the code or token (used twice, expired, or PKCE mismatch); start again.",
): ...


class ReauthRequiredError(
    OAuthInvalidGrantError,
    code="reauth_required",
    http_status=422,
    hint="The mailbox's OAuth grant was revoked or expired; connect the mailbox again.",
):
    """The refresh token is dead (revoked, expired, password changed): a person must reconnect."""


class OAuthClientRejectedError(
    OAuthError,
    code="oauth_client_rejected",
    hint="The provider refused the app's client id or secret (wrong, expired secret, or the redirect "
    "URI / public-client setting does not match the app registration).",
): ...


class OAuthUnavailableError(
    OAuthError,
    code="oauth_unavailable",
    http_status=503,
    hint="The OAuth provider could not be reached or failed; mailport retries. Check connectivity.",
):
    """Network failure or a 5xx: retriable, never counted as an authentication failure."""


class OAuthIdentityError(
    OAuthError,
    code="oauth_identity_invalid",
    hint="The provider's id_token or userinfo could not be used to learn the connected address.",
): ...


class DeviceCodeExpiredError(
    OAuthError,
    code="oauth_device_expired",
    http_status=410,
    hint="The device code expired before it was entered; start the device sign-in again.",
): ...


class OAuthProvidersFileError(
    ConfigurationError,
    code="oauth_providers_file_invalid",
    hint="Fix MAILPORT_OAUTH_PROVIDERS_FILE (see docs/oauth-google.md for its format).",
): ...


class OAuthStateInvalidError(
    InputError,
    code="oauth_state_invalid",
    http_status=400,
    hint="The sign-in link was altered or is not from this service; start the connection again.",
): ...


class OAuthStateExpiredError(
    InputError,
    code="oauth_state_expired",
    http_status=400,
    hint="The sign-in took longer than 10 minutes; start the connection again.",
): ...


class OAuthStateReplayedError(
    InputError,
    code="oauth_state_replayed",
    http_status=400,
    hint="This sign-in was already completed (a reload or a second tab); start again if needed.",
): ...


class OAuthBrowserMismatchError(
    InputError,
    code="oauth_browser_mismatch",
    http_status=400,
    hint="Finish the sign-in in the browser that started it. To let someone else connect their "
    "mailbox, send them a connect link instead.",
):
    """The callback (or the start page) was reached by another browser than the one that
    started the sign-in: a sign-in link sent to someone else must not connect their mailbox."""


class OAuthAccountMismatchError(
    ConflictError,
    code="oauth_account_mismatch",
    hint="Sign in with the mailbox's own account (sign out of the other account at the provider "
    "first), or connect the other account as a new mailbox.",
):
    """A reconnect signed in as another account than the mailbox's: refused, tokens revoked."""


class OAuthProviderUnknownError(
    NotFoundError,
    code="oauth_provider_unknown",
    hint="Use a built-in provider (google, microsoft) or one added in MAILPORT_OAUTH_PROVIDERS_FILE.",
): ...


class DeviceFlowUnsupportedError(
    UnsupportedFeatureError,
    code="oauth_device_flow_unsupported",
    hint="Use the browser sign-in (authorization code flow) for this provider.",
): ...


class OAuthNotConfiguredError(
    MailportError,
    code="oauth_not_configured",
    http_status=422,
    hint="No OAuth app is configured for this provider: set MAILPORT_<PROVIDER>_CLIENT_ID/_SECRET "
    "or register one for the tenant (docs/oauth-google.md, docs/oauth-microsoft.md).",
): ...


# --------------------------------------------------------------------------- sync/delivery
# ingestion


class RawSourceNotStoredError(
    NotFoundError,
    code="raw_not_stored",
    http_status=404,
    hint="The message exceeded MAILPORT_MAX_MESSAGE_BYTES and was delivered with headers only; "
    "raise the limit to ingest such messages whole, or read it from the mail server.",
):
    """The message was over the size limit, so only its header was ingested."""


class MessageSourceExpiredError(
    NotFoundError,
    code="message_source_expired",
    http_status=410,
    hint="Raw sources are kept MAILPORT_RAW_RETENTION_DAYS (default MAILPORT_RETENTION_DAYS, 30) days "
    "after the event was accepted; fetch sources sooner, raise the setting, or read the "
    "message from the mail server.",
):
    """The raw source was kept for the retention period, then dropped (the message row stays)."""


# --------------------------------------------------------------------------- leases


class LeaseLostError(ConflictError):
    """A write guarded by a lease (:func:`mailport.leases.fence`) found the lease held by another
    process, or released: the transaction is rolled back and the new holder does the work."""

    code = "lease_lost"
    hint = (
        "Another mailport process took over this work (its lease had expired); nothing was written. "
        "Nothing to do unless it keeps happening: then the processes are too slow to renew their "
        "leases (an overloaded host or database)."
    )


# --------------------------------------------------------------------------- web


class CSRFError(
    ForbiddenError,
    code="csrf_failed",
    hint="The form expired or came from another site: reload the page and submit it again.",
): ...


class ConnectLinkInvalidError(
    InputError,
    code="connect_link_invalid",
    http_status=400,
    hint="The link is incomplete or was altered: copy the whole link, or ask for a new one.",
): ...


class ConnectLinkExpiredError(
    InputError,
    code="connect_link_expired",
    http_status=410,
    hint="Connect links expire: ask the application that sent you here for a new link.",
): ...


class ConnectLinkUsedError(
    InputError,
    code="connect_link_used",
    http_status=410,
    hint="A connect link works once: ask the application that sent you here for a new link.",
): ...


# --------------------------------------------------------------------------- HTTP server


class RequestTooLargeError(
    InputError,
    code="request_too_large",
    http_status=413,
    hint="Send a smaller request body; the operator sets the limit with MAILPORT_MAX_REQUEST_BYTES.",
): ...


class RequestHeadersTooLargeError(
    InputError,
    code="request_headers_too_large",
    http_status=431,
    hint="Send fewer or shorter headers (cookies included): 64 KiB in all is the limit.",
): ...


class ServerBusyError(
    MailportError,
    code="server_busy",
    http_status=503,
    hint="The service has as many open connections as it allows; retry in a few seconds.",
): ...


class AddressInUseError(
    ConfigurationError,
    code="address_in_use",
    hint="Stop the other process, or choose another port with MAILPORT_PORT (or --port).",
): ...


# --------------------------------------------------------------------------- push notifications


class UnknownConnectorError(NotFoundError):
    code = "unknown_connector"
    hint = "Push notifications go to /v1/push/<connector>/<channel>, for a connector that takes them."


class PushUnauthenticatedError(UnauthorizedError):
    """The same answer for an unknown channel and a wrong secret: a caller that cannot
    authenticate learns nothing about which channels or mailboxes exist."""

    code = "push_unauthenticated"
    hint = (
        "The notification's secret does not match the channel's: only the provider subscription "
        "mailport created for this channel may call it (see docs/push.md)."
    )


class PushInvalidError(InputError):
    code = "push_invalid"
    http_status = 400
    hint = "The body is not a notification of this connector's provider (see docs/push.md)."


# --------------------------------------------------------------------------- mail APIs (Gmail API, Graph)


class ApiRateLimitedError(
    ProviderError,
    code="provider_rate_limited",
    http_status=503,
    hint="The provider throttles this mailbox (HTTP 429, Gmail rateLimitExceeded, Graph "
    "MailboxConcurrency); mailport waits as long as the provider asks and tries again.",
):
    """Still throttled after the client's own bounded retries (``details["retry_after"]``:
    the seconds the provider asked for, when it said)."""


class ApiNotEnabledError(
    ProviderError,
    code="api_not_enabled",
    http_status=502,
    hint="The provider's mail API is off for this account or app: enable the Gmail API in the "
    "Google Cloud project, or check that the Microsoft 365 mailbox exists and is licensed.",
): ...


class SendRefusedError(
    ProviderError,
    code="send_refused",
    http_status=502,
    hint="The provider's mail API refused to send the message (see `server_said`); throttling "
    "is retried, anything else needs the message or the mailbox fixed.",
):
    """A mail API (Gmail, Graph) answered a send with a refusal: the message was certainly not
    sent, so the send worker may retry it (``temporary``) or fail it, even after ``committing``.
    A refusal with a more specific cause keeps that cause's ``code`` (``oauth_token_rejected`` …)."""

    def __init__(self, message: str, *, temporary: bool, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.temporary = temporary


class PushNotConfiguredError(
    ConfigurationError,
    code="push_not_configured",
    http_status=422,
    hint="Push needs a public URL (MAILPORT_PUBLIC_URL) and, for Gmail, a Pub/Sub topic; "
    "until then the mailbox is polled (see docs/api-connectors.md).",
): ...


class DeclarationInvalidError(
    InputError,
    code="declaration_invalid",
    hint="Correct the accounts file (docs/accounts.md; its JSON Schema is docs/accounts.schema.json).",
): ...


class InlineSecretError(
    DeclarationInvalidError,
    code="inline_secret",
    hint="Give secrets by reference: env:NAME, file:PATH (relative to the file), or stored.",
): ...


class SecretReferenceError(
    DeclarationInvalidError,
    code="secret_reference_unresolved",
    hint="Set the environment variable or create the file the reference names.",
): ...


# ------------------------------------------------------------------------ typed HTTP client (mailport.client)


class WebhookSignatureError(
    UnauthorizedError,
    code="webhook_signature_invalid",
    hint="The request was not signed with this endpoint's secret, was changed on the way, or is "
    "older than five minutes: check the secret (whsec_…) and the receiver's clock.",
):
    """A webhook delivery whose signature or timestamp does not verify (``verify_webhook``)."""


def all_error_classes() -> list[type[MailportError]]:
    """Every error class, for documentation checks."""
    seen: list[type[MailportError]] = []
    stack: list[type[MailportError]] = [MailportError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


# --------------------------------------------------------------------------- host-app JWTs (auth)


class TokenRejectedError(
    UnauthorizedError,
    code="invalid_token",
    hint="The bearer token is not a JWT this instance can verify (bad signature or malformed); "
    "send a token signed by the tenant's configured key (see docs/host-apps.md).",
):
    """A host application's JWT was refused. Messages never echo the token."""


class TokenExpiredError(
    TokenRejectedError,
    code="token_expired",
    hint="The token's `exp` has passed (beyond the verifier's leeway); get a fresh token from "
    "the host application.",
): ...


class TokenNotYetValidError(
    TokenRejectedError,
    code="token_not_yet_valid",
    hint="The token's `nbf` or `iat` lies in the future beyond the leeway: check the issuer's "
    "clock, or raise the verifier's `leeway_seconds`.",
): ...


class TokenIssuerError(
    TokenRejectedError,
    code="token_issuer",
    hint="No tenant accepts tokens from this `iss`: set the verifier's `issuer` to exactly the "
    "issuer your host application writes (PUT /v1/tenants/{id}/jwt).",
): ...


class TokenAudienceError(
    TokenRejectedError,
    code="token_audience",
    hint="The token's `aud` does not include the verifier's `audience`; mint tokens for that "
    "audience or change the verifier.",
): ...


class TokenAlgorithmError(
    TokenRejectedError,
    code="token_algorithm",
    hint="The token's `alg` is not one the tenant's verifier accepts (`none` never is; an HS256 "
    "token is refused by a JWKS verifier). Sign with an algorithm listed in `algorithms`.",
): ...


class TokenKeyUnknownError(
    TokenRejectedError,
    code="token_key_unknown",
    hint="The token's `kid` is not in the tenant's JWKS, even after fetching it again: publish the "
    "new key in the JWKS before signing with it.",
): ...


class TokenClaimsError(
    TokenRejectedError,
    code="token_claims",
    hint="The token lacks the owner claim (`owner_claim`, `sub` by default), or its tenant claim "
    "does not name this tenant.",
): ...


class OwnerForbiddenError(
    ForbiddenError,
    code="owner_forbidden",
    hint="A user's token (JWT) reaches only that user's mailboxes; tenant-wide configuration "
    "needs the tenant's API key.",
): ...


class JwksUnavailableError(
    ProviderError,
    code="jwks_unavailable",
    http_status=503,
    hint="mailport could not fetch the tenant's JWKS (network, HTTP error, not a JWKS, or refused "
    "by the host guard); check `jwks_url` and that the server answers.",
): ...


# --------------------------------------------------------------------------- POP3 (issue 19)


class MaildropBusyError(
    AuthUnavailableError,
    code="maildrop_busy",
    http_status=503,
    hint="The POP3 server keeps the mailbox locked for another session, or asks for a pause "
    "between logins (RFC 2449 [IN-USE] / [LOGIN-DELAY]); mailport retries by itself. Close "
    "other POP3 clients of this mailbox, or raise its check_interval.",
):
    """The credentials were accepted but the maildrop cannot be opened now: temporary."""


class UidlUnsupportedError(
    UnsupportedFeatureError,
    code="uidl_unsupported",
    hint="mailport remembers POP3 messages by their unique ids (the UIDL command, RFC 1939), "
    "and this server does not offer it; connect the mailbox over IMAP instead.",
): ...


class Pop3SettingsMissingError(UnsupportedFeatureError):
    code = "pop3_not_configured"
    hint = "Give the mailbox a `pop3` block (host, port, security), or use another connector."


# --------------------------------------------------------------------------- the fleet (fleet, /v1/workers)


class WorkerNotFoundError(
    NotFoundError,
    code="worker_not_found",
    hint="No worker is registered under that id: list them with GET /v1/workers or `mailport workers "
    "list` (a worker's row is forgotten an hour after it stopped heartbeating).",
): ...
