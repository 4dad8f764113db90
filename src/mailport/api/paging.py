"""Cursor-paged list endpoints: the ``cursor`` and ``limit`` query parameters and the page
response, declared once so that every list reads and answers alike.

The parameters are ``Annotated`` types rather than a dependency: they stay the endpoint's own
query parameters, so the OpenAPI document and the order of validation errors do not change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Query
from pydantic import BaseModel

from mailport.store.pagination import MAX_LIMIT

Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
PageT = TypeVar("PageT", bound=BaseModel)


class Found(Protocol[T_co]):
    """What the services' list methods return: one page of items and the cursor of the next."""

    @property
    def items(self) -> Sequence[T_co]: ...

    @property
    def next_cursor(self) -> str | None: ...


def page_of(schema: type[PageT], found: Found[T], read: Callable[[T], Any]) -> PageT:
    """The response ``schema`` (``items`` + ``next_cursor``) with every item rendered by ``read``."""
    return schema(items=[read(item) for item in found.items], next_cursor=found.next_cursor)
