"""What the Graph client returns: plain frozen dataclasses parsed from Graph's JSON, no I/O.

Graph's resources carry far more than mailport reads; each type keeps the handful of fields the
connector maps (see the contract's mapping table) and ``data``, the resource as Graph sent it,
for anything else (``source.graph`` in event payloads is built from these fields).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# wellKnownName (Graph's own spelling) -> mailport's folder role.
WELL_KNOWN_ROLES: dict[str, str] = {
    "inbox": "inbox",
    "sentitems": "sent",
    "drafts": "drafts",
    "deleteditems": "trash",
    "junkemail": "junk",
    "archive": "archive",
}


class DeltaExpiredError(Exception):
    """Graph answered 410 to a deltaLink (``syncStateNotFound`` / ``resyncRequired``): the sync
    state is gone and a new delta round must start. Client-level: the connector recovers."""

    def __init__(self, code: str) -> None:
        super().__init__(f"the delta token expired ({code})")
        self.code = code


def parse_datetime(value: object) -> datetime | None:
    """Graph's ``2024-05-01T10:00:00Z`` (sometimes with fractions) as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_datetime(value: datetime) -> str:
    """An aware datetime as Graph writes it (UTC, ``Z``, no fractions)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class GraphFolder:
    """A mailFolder. ``well_known``: its wellKnownName (``inbox``, ``sentitems`` …) when it is
    one; ``path``: displayName path joined with ``/`` from the top (the inbox is ``INBOX``)."""

    id: str
    display_name: str
    parent_id: str | None
    well_known: str | None = None
    total: int = 0
    unread: int = 0
    child_count: int = 0
    path: str = ""

    @property
    def role(self) -> str | None:
        return WELL_KNOWN_ROLES.get(self.well_known or "")

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], *, well_known: str | None = None, path: str = ""
    ) -> GraphFolder:
        return cls(
            id=str(data["id"]),
            display_name=str(data.get("displayName") or ""),
            parent_id=data.get("parentFolderId"),
            well_known=well_known,
            total=int(data.get("totalItemCount") or 0),
            unread=int(data.get("unreadItemCount") or 0),
            child_count=int(data.get("childFolderCount") or 0),
            path=path or str(data.get("displayName") or ""),
        )


def _address(value: object) -> str | None:
    if isinstance(value, Mapping):
        email = value.get("emailAddress")
        if isinstance(email, Mapping):
            address = email.get("address")
            return str(address) if address else None
    return None


@dataclass(frozen=True)
class GraphMessage:
    """A message resource (whatever ``$select`` asked for; absent fields are None/empty)."""

    id: str
    conversation_id: str | None = None
    folder_id: str | None = None
    change_key: str | None = None
    is_read: bool | None = None
    is_draft: bool | None = None
    flag_status: str | None = None  # notFlagged | flagged | complete
    categories: tuple[str, ...] = ()
    subject: str | None = None
    internet_message_id: str | None = None
    received_at: datetime | None = None
    sent_at: datetime | None = None
    sender: str | None = None
    has_attachments: bool | None = None
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def flagged(self) -> bool:
        return self.flag_status == "flagged"

    @property
    def source(self) -> dict[str, Any]:
        """The ``source.graph`` details of an event payload (the contract's mapping)."""
        return {
            "graph": {
                "id": self.id,
                "conversation_id": self.conversation_id,
                "folder_id": self.folder_id,
                "change_key": self.change_key,
            }
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GraphMessage:
        flag = data.get("flag")
        return cls(
            id=str(data["id"]),
            conversation_id=data.get("conversationId"),
            folder_id=data.get("parentFolderId"),
            change_key=data.get("changeKey"),
            is_read=data.get("isRead"),
            is_draft=data.get("isDraft"),
            flag_status=flag.get("flagStatus") if isinstance(flag, Mapping) else None,
            categories=tuple(data.get("categories") or ()),
            subject=data.get("subject"),
            internet_message_id=data.get("internetMessageId"),
            received_at=parse_datetime(data.get("receivedDateTime")),
            sent_at=parse_datetime(data.get("sentDateTime")),
            sender=_address(data.get("from")) or _address(data.get("sender")),
            has_attachments=data.get("hasAttachments"),
            data=dict(data),
        )


@dataclass(frozen=True)
class MessageList:
    """One page of a message listing; ``next_link`` fetches the next (None: the last page)."""

    items: list[GraphMessage]
    next_link: str | None = None


@dataclass(frozen=True)
class DeltaPage:
    """One page of a folder's ``messages/delta`` round: new or changed messages, ids removed
    from the folder (deleted or moved out), and either ``next_link`` (more pages of this round)
    or ``delta_link`` (the round is complete: store it as the position)."""

    items: list[GraphMessage]
    removed_ids: list[str]
    next_link: str | None = None
    delta_link: str | None = None


@dataclass(frozen=True)
class GraphSubscription:
    """A change-notification subscription (``expiration`` is when Graph drops it)."""

    id: str
    expiration: datetime
    resource: str
    change_type: str = ""
    notification_url: str = ""
    lifecycle_url: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GraphSubscription:
        expiration = parse_datetime(data.get("expirationDateTime"))
        if expiration is None:
            raise ValueError("subscription without expirationDateTime")
        return cls(
            id=str(data["id"]),
            expiration=expiration,
            resource=str(data.get("resource") or ""),
            change_type=str(data.get("changeType") or ""),
            notification_url=str(data.get("notificationUrl") or ""),
            lifecycle_url=data.get("lifecycleNotificationUrl"),
        )


@dataclass(frozen=True)
class BatchRequest:
    """One request of a JSON ``$batch``: ``url`` is relative to the version (``/me/messages/…``)."""

    id: str
    method: str
    url: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchResponse:
    """One answer of a ``$batch`` (``body`` is the decoded JSON, or text for non-JSON bodies)."""

    id: str
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300
