"""How a composed message reaches the mail system: the :class:`Transport` a send worker uses.

The IMAP connector's mailboxes send over SMTP submission (:mod:`mailport.sending.smtp_transport`);
the Gmail API and Graph connectors bring their own transports, which file the Sent copy
themselves (:attr:`Transport.files_sent_copy`). A connector's module registers its transport
under its connector key (:func:`register_transport`, like
:func:`mailport.connectors.registry.register`); :meth:`mailport.services.Services.transport`
asks :func:`transport_for` first and falls back to SMTP submission for a connector without one
(``imap``). The factory gets the same :class:`~mailport.connectors.registry.ConnectorContext`
as the mailbox's connector: its tokens, the guard, the trust and the mail API's base URL.

The one rule every transport keeps: ``committing`` is awaited immediately before the step after
which the message may have been accepted (SMTP: before the final ``.`` of DATA). The worker
records the send as ``committing`` there; whatever fails after it is never sent again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mailport.connectors.registry import ConnectorContext
    from mailport.mailboxes.models import Mailbox


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What a transport sends: bytes without Bcc, and the envelope."""

    raw: bytes = field(repr=False)
    sender: str
    recipients: tuple[str, ...]
    eight_bit: bool = False
    smtputf8: bool = False


@dataclass(frozen=True, slots=True)
class Accepted:
    """The server's answer to the message: ``"250 2.0.0 Ok: queued as 4Fx…"``, and the
    recipients it refused while accepting the others (``{"a@b": "550 5.1.1 no such user"}``)."""

    reply: str
    refused: dict[str, str] = field(default_factory=dict)


Committing = Callable[[], Awaitable[None]]


class Transport(Protocol):
    """One mailbox's way out. Errors are :class:`mailport.errors.MailportError`: a
    :class:`~mailport.errors.SMTPRejectedError` keeps ``smtp_code`` and ``server_said``
    (4xx temporary, 5xx permanent); connection errors are temporary."""

    files_sent_copy: bool  # the provider stores the Sent copy itself (Gmail over SMTP)

    async def transmit(self, message: Outgoing, *, committing: Committing) -> Accepted: ...

    async def aclose(self) -> None: ...


TransportFactory = Callable[["Mailbox", "ConnectorContext"], Transport]

_TRANSPORTS: dict[str, TransportFactory] = {}


def register_transport(key: str, factory: TransportFactory) -> None:
    """Mailboxes read by connector ``key`` send through ``factory``'s transport (a later
    registration of a key replaces it). ``imap`` registers none: it sends over SMTP."""
    _TRANSPORTS[key] = factory


def unregister_transport(key: str) -> None:
    _TRANSPORTS.pop(key, None)


def transport_keys() -> list[str]:
    return sorted(_TRANSPORTS)


def registered_transport(key: str) -> TransportFactory | None:
    """The factory registered for connector ``key`` (None: it sends over SMTP)."""
    return _TRANSPORTS.get(key)


def transport_for(mailbox: Mailbox, context: ConnectorContext) -> Transport | None:
    """The transport registered for ``mailbox.connector``, built with its connector's context;
    None when the connector brings none (the caller sends over SMTP submission)."""
    factory = _TRANSPORTS.get(mailbox.connector)
    return None if factory is None else factory(mailbox, context)
