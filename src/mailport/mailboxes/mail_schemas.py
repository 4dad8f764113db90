"""Request and response bodies of a mailbox's live messages, threads and folder changes
(``/v1/mailboxes/{id}/messages…``, ``…/threads/{key}``, ``POST/PATCH …/folders``).

Requests are :class:`~mailport.validation.RequestModel` (unknown fields refused with
``unknown_field``, unstorable text refused) and turn into the connector's neutral queries
(:mod:`mailport.connectors.mail`). Everything that reaches a server is one line: a CR or LF in a
search term, a flag or the ``native`` query would inject a protocol command.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from mailport.connectors.base import MessageRef
from mailport.connectors.mail import MAX_LIMIT, FlagChange, MessageSummary, SearchQuery
from mailport.errors import InputError
from mailport.mailboxes.validation import clean_folder
from mailport.validation import RequestModel, clean_line, clean_required_line

MAX_BULK = 1000  # refs per bulk request
MAX_FLAGS = 50  # flags or labels per list of a flag change
MAX_HEADERS = 20  # header criteria per search

# An IMAP atom (RFC 3501 atom-char; "\" too: system flags have neutral names here).
_KEYWORD = re.compile(r"[\x21\x23-\x27\x2b-\x5b\x5e-\x7a\x7c\x7e]+")
_HEADER_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 ftext


def _ref(value: str) -> str:
    try:
        MessageRef.decode(value)
    except InputError as exc:
        raise ValueError(exc.message) from None
    return value


def keyword(value: str) -> str:
    if not _KEYWORD.fullmatch(value):
        raise ValueError(
            "a flag is seen, flagged, answered, draft or a keyword of printable ASCII "
            'without spaces, \\ ( ) { } % * " or ]'
        )
    return value


def _header_name(value: str) -> str:
    if not _HEADER_NAME.fullmatch(value):
        raise ValueError("a header name is printable ASCII without spaces or ':'")
    return value


def utc(value: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC (``2026-01-31`` means that day in UTC)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


Ref = Annotated[str, StringConstraints(min_length=5, max_length=4000), AfterValidator(_ref)]
FolderPath = Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(clean_folder)]
FolderName = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(clean_required_line)
]
Term = Annotated[str, StringConstraints(min_length=1, max_length=1000), AfterValidator(clean_required_line)]
Keyword = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(keyword)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(clean_required_line)]
HeaderName = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_header_name)]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT}.")]
Cursor = Annotated[str, StringConstraints(min_length=1, max_length=2000), AfterValidator(clean_line)]
Time = Annotated[datetime, AfterValidator(utc)]

# --------------------------------------------------------------------------- responses


class AddressOut(BaseModel):
    name: str
    email: str

    model_config = ConfigDict(from_attributes=True)


class MessageItem(BaseModel):
    """One message of a listing, a search or a thread (no body: ``GET …/messages/{ref}``)."""

    ref: str = Field(description="The message's opaque reference (what every message route takes).")
    folder: str = Field(description="The folder's path, as the folder list shows it.")
    subject: str | None
    from_: list[AddressOut] = Field(alias="from")
    to: list[AddressOut]
    cc: list[AddressOut]
    reply_to: list[AddressOut]
    date: datetime | None = Field(description="The Date header.")
    message_id: str | None
    in_reply_to: str | None
    flags: list[str] = Field(
        description="seen, flagged, answered, draft, or keywords as the server spells them."
    )
    labels: list[str] = Field(description="Gmail labels (empty elsewhere).")
    size: int
    received_at: datetime | None = Field(description="When the server received it (IMAP INTERNALDATE).")
    has_attachments: bool | None = Field(description="None: the server could not tell cheaply.")
    preview: str | None = Field(description="A short text preview, where the server makes it cheap.")
    thread_key: str | None = Field(description="The 32-hex key of GET …/threads/{key}.")

    model_config = ConfigDict(populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _from_summary(cls, value: Any) -> Any:
        if not isinstance(value, MessageSummary):
            return value
        envelope = value.envelope
        return {
            "ref": value.ref.encode(),
            "folder": value.folder,
            "subject": envelope.subject,
            "from": [AddressOut.model_validate(a) for a in envelope.from_],
            "to": [AddressOut.model_validate(a) for a in envelope.to],
            "cc": [AddressOut.model_validate(a) for a in envelope.cc],
            "reply_to": [AddressOut.model_validate(a) for a in envelope.reply_to],
            "date": envelope.date,
            "message_id": envelope.message_id,
            "in_reply_to": envelope.in_reply_to,
            "flags": list(value.flags),
            "labels": list(value.labels),
            "size": value.size,
            "received_at": value.received_at,
            "has_attachments": value.has_attachments,
            "preview": value.preview,
            "thread_key": value.thread_key,
        }


class MessagePage(BaseModel):
    data: list[MessageItem]
    next_cursor: str | None = Field(description="Pass it as `cursor` for the next page; None: the last page.")


class ThreadOut(BaseModel):
    data: list[MessageItem] = Field(description="Oldest first, across the inbox and the sent folder.")


class AttachmentOut(BaseModel):
    index: int = Field(description="n of GET …/messages/{ref}/attachments/{n}.")
    section: str
    filename: str | None
    content_type: str
    size: int
    content_id: str | None
    disposition: str


class MessageOut(BaseModel):
    """A parsed message: the ``message.received`` payload's shape, live from the server."""

    ref: str
    mailbox_id: str
    folder: str
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    thread_key: str
    from_: list[AddressOut] = Field(alias="from")
    sender: list[AddressOut]
    reply_to: list[AddressOut]
    to: list[AddressOut]
    cc: list[AddressOut]
    bcc: list[AddressOut]
    subject: str
    date: str | None
    date_raw: str | None
    text: str | None
    html: str | None = Field(description="Sanitized unless ?html=original; None with ?html=none.")
    remote_images_blocked: int = Field(description="Remote images taken out of the sanitized HTML.")
    attachments: list[AttachmentOut]
    size: int
    flags: list[str]
    labels: list[str]
    received_at: datetime | None
    headers: list[list[str]] = Field(description="Every header as [name, value], in order.")
    sha256: str
    parse_error: str | None
    truncated: bool = Field(description="True: over MAILPORT_MAX_MESSAGE_BYTES, headers only.")

    model_config = ConfigDict(populate_by_name=True)


class ImportedOut(BaseModel):
    ref: str | None = Field(description="None when the server does not tell (no UIDPLUS).")


class MovedOut(BaseModel):
    ref: str | None = Field(description="The message's new ref (None when the server does not tell).")


class MovedItem(BaseModel):
    ref: str
    new_ref: str | None


class MovedList(BaseModel):
    data: list[MovedItem]


# --------------------------------------------------------------------------- requests


class SearchRequest(RequestModel):
    """Every given criterion must hold. ``native`` goes to the server as it is (IMAP SEARCH
    keys; Gmail ``q``; Graph ``$search``) and combines with the others."""

    folder: FolderPath = "INBOX"
    limit: Limit = 50
    cursor: Cursor | None = None
    from_: Term | None = Field(None, alias="from")
    to: Term | None = None
    cc: Term | None = None
    subject: Term | None = None
    text: Term | None = Field(None, description="Anywhere in the headers or the body.")
    body: Term | None = None
    since: Time | None = Field(None, description="Received on or after (the day, on IMAP).")
    before: Time | None = Field(None, description="Received before (the day, on IMAP).")
    seen: bool | None = None
    flagged: bool | None = None
    answered: bool | None = None
    has_attachment: bool | None = None
    larger: int | None = Field(None, ge=0, description="Bytes.")
    smaller: int | None = Field(None, ge=1, description="Bytes.")
    headers: dict[HeaderName, Term] = Field(default_factory=dict, max_length=MAX_HEADERS)
    message_id: Term | None = None
    native: Term | None = Field(None, description="Passed to the server as it is.")

    def query(self) -> SearchQuery:
        return SearchQuery(
            folder=self.folder,
            limit=self.limit,
            cursor=self.cursor,
            from_=self.from_,
            to=self.to,
            cc=self.cc,
            subject=self.subject,
            text=self.text,
            body=self.body,
            since=self.since,
            before=self.before,
            seen=self.seen,
            flagged=self.flagged,
            answered=self.answered,
            has_attachment=self.has_attachment,
            larger=self.larger,
            smaller=self.smaller,
            headers=dict(self.headers),
            message_id=self.message_id,
            native=self.native,
        )


class FlagsRequest(RequestModel):
    """Flags (``seen``, ``flagged``, ``answered``, ``draft`` or keywords) and labels to add and
    to remove; at least one."""

    add: list[Keyword] = Field(default_factory=list, max_length=MAX_FLAGS)
    remove: list[Keyword] = Field(default_factory=list, max_length=MAX_FLAGS)
    add_labels: list[Label] = Field(default_factory=list, max_length=MAX_FLAGS)
    remove_labels: list[Label] = Field(default_factory=list, max_length=MAX_FLAGS)

    @model_validator(mode="after")
    def _something(self) -> FlagsRequest:
        if not (self.add or self.remove or self.add_labels or self.remove_labels):
            raise ValueError("give at least one flag or label to add or remove")
        if both := set(self.add) & set(self.remove):
            raise ValueError(f"a flag cannot be both added and removed: {sorted(both)[0]}")
        return self

    def change(self) -> FlagChange:
        return FlagChange(
            add=frozenset(self.add),
            remove=frozenset(self.remove),
            add_labels=frozenset(self.add_labels),
            remove_labels=frozenset(self.remove_labels),
        )


class MoveRequest(RequestModel):
    folder: FolderPath = Field(description="The target folder's path, as the folder list shows it.")


Refs = Annotated[list[Ref], Field(min_length=1, max_length=MAX_BULK, description=f"1 to {MAX_BULK} refs.")]


class BulkFlagsRequest(FlagsRequest):
    refs: Refs


class BulkMoveRequest(MoveRequest):
    refs: Refs


class BulkDeleteRequest(RequestModel):
    refs: Refs
    permanent: bool = Field(False, description="Expunge for good instead of moving to the trash.")


class FolderCreate(RequestModel):
    name: FolderName = Field(description="The new folder's name (one level, as shown).")
    parent: FolderPath | None = Field(None, description="The parent's path; None: the top level.")


def _parent(value: str) -> str:
    return value if value == "" else clean_folder(value)


class FolderRename(RequestModel):
    name: FolderName = Field(description="The folder's new name (one level, as shown).")
    parent: Annotated[str, StringConstraints(max_length=500), AfterValidator(_parent)] | None = Field(
        None,
        description='The new parent\'s path; "": the top level; None: where it is now.',
    )
