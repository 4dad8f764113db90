"""The Gmail API's resources as mailport's client returns them: small frozen dataclasses parsed
from the JSON the API answers (field names as Python spells them, times as aware UTC datetimes,
ids and historyIds as the API's decimal strings), plus the client-level exceptions.

Pure: no I/O. ``from_json`` functions are total over the shapes the discovery document declares
(absent fields become None / empty), so a field Google leaves out never raises here.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SYSTEM_LABELS = ("INBOX", "SENT", "DRAFT", "TRASH", "SPAM", "STARRED", "IMPORTANT", "UNREAD", "CHAT")


class HistoryExpiredError(Exception):
    """``history.list`` answered 404: the startHistoryId is older than Gmail keeps history
    (about a week, sometimes hours). Client-level, like Graph's ``DeltaExpiredError``: the
    connector recovers with a bounded re-list by date, so no user ever sees it."""


def b64url_decode(text: str) -> bytes:
    """Gmail's ``raw`` (base64url, padding optional)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def ms_datetime(value: str | int | None) -> datetime | None:
    """Milliseconds since the epoch (``internalDate``, ``expiration``) → aware UTC datetime."""
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


@dataclass(frozen=True)
class Profile:
    email: str
    history_id: str
    messages_total: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        return cls(str(data["emailAddress"]), str(data["historyId"]), int(data.get("messagesTotal") or 0))


@dataclass(frozen=True)
class Label:
    """A label; ``messages_total``/``messages_unread`` only from ``labels.get`` (the list has no counts)."""

    id: str
    name: str
    type: str  # "system" | "user"
    messages_total: int | None = None
    messages_unread: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Label:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or data["id"]),
            type=str(data.get("type") or "user"),
            messages_total=data.get("messagesTotal"),
            messages_unread=data.get("messagesUnread"),
        )


@dataclass(frozen=True)
class MessageId:
    id: str
    thread_id: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MessageId:
        return cls(str(data["id"]), str(data.get("threadId") or ""))


@dataclass(frozen=True)
class MessageList:
    ids: list[MessageId]
    next_page_token: str | None
    result_size_estimate: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MessageList:
        return cls(
            [MessageId.from_json(item) for item in data.get("messages") or ()],
            data.get("nextPageToken") or None,
            int(data.get("resultSizeEstimate") or 0),
        )


@dataclass(frozen=True)
class GmailMessage:
    """``messages.get`` in one of three formats: ``raw`` fills ``raw`` (the RFC 5322 bytes),
    ``metadata`` fills ``headers`` (lower-cased names → the first value) and ``fields`` (every
    field as Gmail names it, in order), ``minimal`` neither."""

    id: str
    thread_id: str
    label_ids: tuple[str, ...]
    history_id: str
    internal_date: datetime | None
    size_estimate: int
    raw: bytes | None = None
    headers: dict[str, str] | None = None
    snippet: str = ""
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GmailMessage:
        headers: dict[str, str] | None = None
        fields: list[tuple[str, str]] = []
        payload = data.get("payload")
        if isinstance(payload, Mapping) and payload.get("headers") is not None:
            headers = {}
            for header in payload["headers"]:
                fields.append((str(header.get("name", "")), str(header.get("value", ""))))
                headers.setdefault(fields[-1][0].lower(), fields[-1][1])
        raw = data.get("raw")
        return cls(
            id=str(data["id"]),
            thread_id=str(data.get("threadId") or ""),
            label_ids=tuple(data.get("labelIds") or ()),
            history_id=str(data.get("historyId") or ""),
            internal_date=ms_datetime(data.get("internalDate")),
            size_estimate=int(data.get("sizeEstimate") or 0),
            raw=b64url_decode(raw) if isinstance(raw, str) else None,
            headers=headers,
            snippet=str(data.get("snippet") or ""),
            fields=tuple(fields),
        )


@dataclass(frozen=True)
class HistoryMessage:
    """The message a history record names (id, thread and its labels at that time)."""

    id: str
    thread_id: str
    label_ids: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryMessage:
        return cls(str(data["id"]), str(data.get("threadId") or ""), tuple(data.get("labelIds") or ()))


@dataclass(frozen=True)
class LabelChange:
    message: HistoryMessage
    label_ids: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelChange:
        return cls(HistoryMessage.from_json(data["message"]), tuple(data.get("labelIds") or ()))


@dataclass(frozen=True)
class HistoryRecord:
    id: str
    messages_added: tuple[HistoryMessage, ...] = ()
    messages_deleted: tuple[HistoryMessage, ...] = ()
    labels_added: tuple[LabelChange, ...] = ()
    labels_removed: tuple[LabelChange, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryRecord:
        return cls(
            id=str(data["id"]),
            messages_added=tuple(
                HistoryMessage.from_json(i["message"]) for i in data.get("messagesAdded") or ()
            ),
            messages_deleted=tuple(
                HistoryMessage.from_json(i["message"]) for i in data.get("messagesDeleted") or ()
            ),
            labels_added=tuple(LabelChange.from_json(i) for i in data.get("labelsAdded") or ()),
            labels_removed=tuple(LabelChange.from_json(i) for i in data.get("labelsRemoved") or ()),
        )


@dataclass(frozen=True)
class HistoryPage:
    """One page of ``history.list``; ``history_id`` is the mailbox's current historyId (a cursor
    after which nothing is missed once the last page is read)."""

    records: list[HistoryRecord]
    next_page_token: str | None
    history_id: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryPage:
        return cls(
            [HistoryRecord.from_json(item) for item in data.get("history") or ()],
            data.get("nextPageToken") or None,
            str(data.get("historyId") or ""),
        )


@dataclass(frozen=True)
class Draft:
    id: str
    message: GmailMessage

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Draft:
        return cls(str(data["id"]), GmailMessage.from_json(data["message"]))


@dataclass(frozen=True)
class DraftId:
    id: str
    message_id: str
    thread_id: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DraftId:
        message = data.get("message") or {}
        return cls(str(data["id"]), str(message.get("id") or ""), str(message.get("threadId") or ""))


@dataclass(frozen=True)
class DraftList:
    drafts: list[DraftId]
    next_page_token: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DraftList:
        return cls(
            [DraftId.from_json(item) for item in data.get("drafts") or ()], data.get("nextPageToken") or None
        )


@dataclass(frozen=True)
class GmailThread:
    id: str
    history_id: str
    messages: list[GmailMessage] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GmailThread:
        return cls(
            str(data["id"]),
            str(data.get("historyId") or ""),
            [GmailMessage.from_json(item) for item in data.get("messages") or ()],
        )


@dataclass(frozen=True)
class Watch:
    history_id: str
    expiration: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Watch:
        return cls(str(data["historyId"]), ms_datetime(data.get("expiration")))


__all__ = [
    "SYSTEM_LABELS",
    "Draft",
    "DraftId",
    "DraftList",
    "GmailMessage",
    "GmailThread",
    "HistoryExpiredError",
    "HistoryMessage",
    "HistoryPage",
    "HistoryRecord",
    "Label",
    "LabelChange",
    "MessageId",
    "MessageList",
    "Profile",
    "Watch",
    "b64url_decode",
    "b64url_encode",
    "ms_datetime",
]
