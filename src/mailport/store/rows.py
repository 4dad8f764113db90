"""Rows to records: a frozen dataclass built from the columns that carry its fields' names.

Why: the repositories map rows field by field (``id=row.id, tenant_id=row.tenant_id, …``);
naming only the fields that are converted (a status enum, a sealed secret, a split list)
keeps each mapping to what is particular about it. A field with neither a column nor a
value is an error (``AttributeError``), never silently a default.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


def from_row(record: type[R], row: Any, **values: Any) -> R:
    """``record`` from ``row``: each field from the column of its name unless given in ``values``."""
    columns = {name: getattr(row, name) for name in _init_fields(record) if name not in values}
    return record(**columns, **values)


@functools.cache
def _init_fields(record: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(record) if field.init)
