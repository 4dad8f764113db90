"""Listing and searching a tenant's contacts: the filters, the sort orders and their cursors.

Paging is by keyset, never by offset: a page starts after the last contact of the previous one
in the chosen order, so a harvest that adds contacts meanwhile neither repeats nor skips one.
Orders other than by id need the sort value in the cursor beside the id (the shared
:mod:`mailport.store.pagination` cursor holds an id only), so this module writes its own:
``base64url(JSON [sort, value, id])``, just as opaque to clients. The value is the one the
database computed (``lower()`` differs between SQLite and PostgreSQL), so the next page's
comparison is the database's own.

The orders (``sort``), each with the id as the tie-break:

- ``score`` (default): by ``rank`` descending, the time-invariant key that orders as the score
  does at any moment (:func:`mailport.contacts.store.rank_key`);
- ``name``: by the shown name, else the primary address, case-insensitively, ascending;
- ``last_seen`` / ``first_seen``: newest first; contacts made by hand and never seen last.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.sql import Select

from mailport.contacts.addresses import normalize_domain
from mailport.contacts.groups import is_member_of
from mailport.errors import InputError, InvalidCursorError
from mailport.store.ids import plausible_id
from mailport.store.pagination import DEFAULT_LIMIT
from mailport.store.tables import contact_addresses, contacts
from mailport.validation import check_text

Sort = Literal["score", "name", "last_seen", "first_seen"]
SORTS: tuple[Sort, ...] = ("score", "name", "last_seen", "first_seen")


@dataclass(frozen=True, slots=True)
class ContactQuery:
    """What a list, a search or an export asks for (every filter optional, all must match)."""

    q: str | None = None  # a substring of a name, an address or the organisation
    domain: str | None = None  # a key's domain is this one or one of its subdomains
    group: str | None = None  # a group id (cg_…): its members
    two_way: bool | None = None
    sort: Sort = "score"
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ends: the sort value of its last contact, and that contact's id."""

    sort: Sort
    value: Any
    id: str


def _sort_column(sort: Sort) -> ColumnElement[Any]:
    if sort == "score":
        return contacts.c.rank
    if sort == "name":
        return func.lower(func.coalesce(contacts.c.name, contacts.c.email))
    return contacts.c.last_seen if sort == "last_seen" else contacts.c.first_seen


def encode_position(position: Position) -> str:
    value = position.value.isoformat() if isinstance(position.value, datetime) else position.value
    raw = json.dumps([position.sort, value, position.id], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii").rstrip("=")


def decode_position(cursor: str | None, sort: Sort) -> Position | None:
    """The position a cursor of this module stands for (None: the first page); a cursor that
    is not one, or of another sort order, is 422 ``invalid_cursor``."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        given, value, last_id = json.loads(raw.decode("utf-8"))
        value = _value(sort, value)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise InvalidCursorError("the cursor is not one this API returned", field="cursor") from exc
    if given != sort or not isinstance(last_id, str) or not plausible_id(last_id):
        raise InvalidCursorError(
            "the cursor is not one this API returned for this sort order", field="cursor"
        )
    return Position(sort, value, last_id)


def _value(sort: Sort, value: Any) -> Any:
    if sort == "score":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError("a score cursor holds a finite number")
        return float(value)
    if sort == "name":
        if not isinstance(value, str):
            raise ValueError("a name cursor holds text")
        return check_text(value)  # no NUL or lone surrogate reaches the driver
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a date cursor holds a zone")
    return moment


def _after(position: Position) -> ColumnElement[bool]:
    """The rows after ``position`` in its order (see the module docstring)."""
    column = _sort_column(position.sort)
    later_id = contacts.c.id > position.id
    if position.sort == "name":
        return or_(column > position.value, and_(column == position.value, later_id))
    if position.sort == "score":
        return or_(column < position.value, and_(column == position.value, later_id))
    # dates: newest first, then the never-seen (NULL) ones by id
    if position.value is None:
        return and_(column.is_(None), later_id)
    return or_(column < position.value, and_(column == position.value, later_id), column.is_(None))


def _order(sort: Sort) -> list[Any]:
    column = _sort_column(sort)
    if sort == "name":
        return [column.asc(), contacts.c.id.asc()]
    if sort == "score":
        return [column.desc(), contacts.c.id.asc()]
    return [column.is_(None).asc(), column.desc(), contacts.c.id.asc()]


def domain_filter(domain: str) -> str:
    """A ``domain`` filter as keys spell it (lowercase A-labels); 422 when it is no host name."""
    normalized = normalize_domain(domain.strip().lstrip("@"))
    if normalized is None:
        raise InputError(
            f"{domain!r} is not a domain name (such as example.com)",
            field="domain",
            hint="Give a domain name with at least one dot, such as example.com; subdomains match too.",
        )
    return normalized


def select_page(
    tenant_id: str, owner: str | None, query: ContactQuery, *, after: Position | None, limit: int
) -> Select[Any]:
    """The ids and sort values of the contacts on one page (``limit`` rows; ask one more to
    know whether another page follows)."""
    conditions: list[ColumnElement[bool]] = [contacts.c.tenant_id == tenant_id]
    if owner is not None:
        conditions.append(contacts.c.owner == owner)
    if query.q:
        conditions.append(contacts.c.search.contains(query.q.casefold(), autoescape=True))
    if query.domain:
        domain = domain_filter(query.domain)
        conditions.append(
            exists().where(
                contact_addresses.c.contact_id == contacts.c.id,
                or_(
                    contact_addresses.c.key.endswith("@" + domain, autoescape=True),
                    contact_addresses.c.key.endswith("." + domain, autoescape=True),
                ),
            )
        )
    if query.group:
        conditions.append(is_member_of(query.group))
    if query.two_way is not None:
        conditions.append(contacts.c.two_way == query.two_way)
    if after is not None:
        conditions.append(_after(after))
    return (
        select(contacts.c.id, _sort_column(query.sort).label("sort_value"))
        .where(*conditions)
        .order_by(*_order(query.sort))
        .limit(limit)
    )
