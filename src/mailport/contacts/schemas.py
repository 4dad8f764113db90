"""Request and response bodies of ``/v1/contacts`` (never rows).

:class:`ContactRead` is :func:`mailport.contacts.views.contact_json` as a model, field for
field, so the API's item, the events' payload and the CLI's ``--json`` line never disagree; its
times stay the ISO 8601 text ``contact_json`` writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from mailport.contacts.history import AddressReport, Exclusion, History
from mailport.contacts.models import StoredContact
from mailport.contacts.views import contact_json
from mailport.validation import MAX_EMAIL_LENGTH, RequestModel, check_text, clean_line

MAX_MERGE = 100  # contacts merged into one at a time
MAX_BLOCKED = 10_000  # addresses, and domains, on a tenant's block list at once


def _required_line(value: str) -> str:
    value = clean_line(value)
    if not value:
        raise ValueError("a non-blank value is required; send null to go back to the harvested one")
    return value


Name = Annotated[str, StringConstraints(max_length=200), AfterValidator(_required_line)]
Organisation = Annotated[str, StringConstraints(max_length=253), AfterValidator(_required_line)]
Notes = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(check_text)]
Address = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_EMAIL_LENGTH), AfterValidator(clean_line)
]
Domain = Annotated[str, StringConstraints(min_length=1, max_length=253), AfterValidator(clean_line)]
Owner = Annotated[
    str,
    StringConstraints(max_length=200),
    AfterValidator(clean_line),
    Field(
        description="The owner's contact book (the owner of the mailboxes); empty or left out: the tenant's"
    ),
]
ContactId = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(clean_line)]
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class ContactRead(BaseModel):
    """A contact (``contact_json``); ``score`` is computed when the answer is written."""

    id: str
    owner: str | None = Field(description="The owner whose book holds it; null: the tenant's book")
    name: str | None
    email: str = Field(description="The primary address (canonical)")
    emails: list[str] = Field(description="Every address key of the contact, the primary first")
    addresses_seen: list[str] = Field(description="Every address as written in the mail")
    names_seen: dict[str, int] = Field(description="Display names seen, with how many messages each")
    organisation: str | None
    notes: str | None
    first_seen: Timestamp | None
    last_seen: Timestamp | None
    sent_to: int
    received_from: int
    copied: int
    two_way: bool
    score: float = Field(description="Frequency and recency, with a two-way boost (docs/contacts.md)")
    version: int
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, contact: StoredContact, *, now: datetime) -> ContactRead:
        return cls.model_validate(contact_json(contact, now=now))


class ContactPage(BaseModel):
    items: list[ContactRead]
    next_cursor: str | None


class ContactCreate(RequestModel):
    email: Address = Field(description="The address; its canonical form becomes the contact's key")
    name: Name | None = None
    organisation: Organisation | None = Field(
        None, description="Left out: the address's domain, unless free-mail"
    )
    notes: Notes | None = None
    owner: Owner | None = None


class ContactUpdate(RequestModel):
    """Only the fields sent change. ``name`` or ``organisation`` set by hand are kept when new
    mail arrives; null hands them back to the harvest."""

    name: Name | None = None
    organisation: Organisation | None = None
    notes: Notes | None = None
    email: Address | None = Field(None, description="The primary address: one of the contact's `emails`")

    @model_validator(mode="after")
    def _email_not_null(self) -> ContactUpdate:
        if "email" in self.model_fields_set and self.email is None:
            raise ValueError("`email` cannot be null: choose one of the contact's emails")
        return self


class MergeRequest(RequestModel):
    model_config = ConfigDict(populate_by_name=True)

    into: ContactId = Field(description="The contact that stays")
    from_: list[ContactId] = Field(
        alias="from",
        min_length=1,
        max_length=MAX_MERGE,
        description="The contacts merged into it (then deleted; their ids answer 404)",
    )


class SourceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    mailbox_id: str
    mailbox_email: str
    keys: list[str] = Field(description="The contact's addresses this mailbox's mail has")
    sent_to: int
    received_from: int
    copied: int
    first_seen: datetime
    last_seen: datetime


class ExclusionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    mailbox_id: str
    mailbox_email: str
    owner: str | None
    key: str
    reason: str = Field(description="A stable code (docs/contacts.md, Exclusions), or `deleted`")
    description: str
    messages: int = Field(description="Messages that left the address out for this reason")
    first_seen: datetime
    last_seen: datetime

    @classmethod
    def of(cls, value: Exclusion) -> ExclusionRead:
        return cls(
            mailbox_id=value.mailbox_id,
            mailbox_email=value.mailbox_email,
            owner=value.owner or None,
            key=value.key,
            reason=value.reason,
            description=value.description,
            messages=value.messages,
            first_seen=value.first_seen,
            last_seen=value.last_seen,
        )


class GroupRefRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: str
    source: str = Field(description="How the contact came in: manual, rule or organisation")


class HistoryRead(BaseModel):
    contact_id: str
    sources: list[SourceRead] = Field(description="Per mailbox, what its mail says about the contact")
    exclusions: list[ExclusionRead] = Field(
        description="Messages that left the contact's addresses out, and why"
    )
    groups: list[GroupRefRead]

    @classmethod
    def of(cls, found: History) -> HistoryRead:
        return cls(
            contact_id=found.contact_id,
            sources=[SourceRead.model_validate(s) for s in found.sources],
            exclusions=[ExclusionRead.of(e) for e in found.exclusions],
            groups=[GroupRefRead.model_validate(g) for g in found.groups],
        )


class DeletionRead(BaseModel):
    key: str
    owner: str | None
    contact_id: str = Field(description="The id the deleted contact had")
    deleted_at: datetime


class ContactRef(BaseModel):
    id: str
    owner: str | None


class AddressExclusionsRead(BaseModel):
    address: str
    keys: list[str] = Field(description="The keys the address is known by (canonical, and provider-folded)")
    contacts: list[ContactRef] = Field(description="Contacts holding one of the keys (one per book)")
    rule: str | None = Field(
        description="Why every harvest leaves it out whatever the mail (block list, no-reply, "
        "mail system), or null"
    )
    rule_description: str | None
    deleted: list[DeletionRead] = Field(description="Deleted contacts' keys: never harvested again")
    exclusions: list[ExclusionRead]

    @classmethod
    def of(cls, report: AddressReport) -> AddressExclusionsRead:
        return cls(
            address=report.address,
            keys=list(report.keys),
            contacts=[ContactRef(id=cid, owner=book or None) for cid, book in report.contacts],
            rule=report.rule,
            rule_description=report.rule_description,
            deleted=[
                DeletionRead(
                    key=d.key, owner=d.owner or None, contact_id=d.contact_id, deleted_at=d.deleted_at
                )
                for d in report.deleted
            ],
            exclusions=[ExclusionRead.of(e) for e in report.exclusions],
        )


class BlockListRead(BaseModel):
    addresses: list[str] = Field(description="Canonical, provider-folded addresses")
    domains: list[str] = Field(description="Domains (A-labels); each covers its subdomains")


class BlockListPut(RequestModel):
    addresses: list[Address] = Field(default_factory=list, max_length=MAX_BLOCKED)
    domains: list[Domain] = Field(default_factory=list, max_length=MAX_BLOCKED)


class BlockListEntry(RequestModel):
    """One address or one domain."""

    address: Address | None = None
    domain: Domain | None = None

    @model_validator(mode="after")
    def _one(self) -> BlockListEntry:
        if (self.address is None) == (self.domain is None):
            raise ValueError("give either `address` or `domain`")
        return self
