"""Bodies of ``/v1/mailboxes/{id}/contacts`` (a mailbox's harvest: settings and progress)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from mailport.contacts.schedule import SyncState
from mailport.mailboxes.models import Mailbox
from mailport.mailboxes.schemas import ContactsOut
from mailport.validation import RequestModel


class SyncRequest(RequestModel):
    full: bool = Field(
        False,
        strict=True,
        description="Read the whole period again from the server (what was counted is not counted twice)",
    )


class SyncError(BaseModel):
    code: str
    message: str
    attempts: int = Field(description="Failed runs in a row")


class SyncOut(BaseModel):
    state: str = Field(description="pending | running | idle | failed")
    since: datetime = Field(description="The start of the harvested period")
    started_at: datetime | None
    finished_at: datetime | None
    next_at: datetime | None = Field(description="The next scheduled run; null: none (harvesting is off)")
    messages: int = Field(description="Messages counted by the current or last run")
    last_error: SyncError | None
    folders: dict[str, datetime] = Field(
        description="Each harvested folder and where the next run reads from"
    )


class ContactSyncOut(BaseModel):
    mailbox_id: str
    settings: ContactsOut | None = Field(
        description="settings.contacts of the mailbox; null: never switched on"
    )
    sync: SyncOut | None = Field(description="null: harvesting was never switched on")

    @classmethod
    def of(cls, mailbox: Mailbox, state: SyncState | None) -> ContactSyncOut:
        contacts = mailbox.settings.contacts
        return cls(
            mailbox_id=mailbox.id,
            settings=ContactsOut.from_model(contacts) if contacts is not None else None,
            sync=SyncOut.model_validate(state.to_json()) if state is not None else None,
        )
