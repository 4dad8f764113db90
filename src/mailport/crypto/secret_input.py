"""Secrets in request bodies: ``SecretStr`` fields that still validate like the text they were.

A request's password or client secret is held as pydantic's ``SecretStr`` so that a ``repr``,
a log line or ``str()`` of a validation error can never show it. Length limits declared on a
``SecretStr`` itself would speak of "items after validation"; :class:`SecretText` checks the
text first, so a 422 reads "String should have at most 1024 characters" like every other text
field (and, as before, names the field but never carries the value). Usage::

    Password = Annotated[SecretStr, SecretText(min_length=1, max_length=1024, check=check_password)]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, SecretStr
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticKnownError, core_schema


@dataclass(frozen=True)
class SecretText:
    """Metadata for ``Annotated[SecretStr, ...]``: text limits and a check, applied before wrapping."""

    max_length: int
    min_length: int = 0
    check: Callable[[str], str] | None = None  # raises ValueError with a message fit for a person

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self._validate_text, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler.resolve_ref_schema(handler(schema))
        if self.min_length:
            json_schema["minLength"] = self.min_length
        json_schema["maxLength"] = self.max_length
        return json_schema

    def _validate_text(self, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(text, str):
            return value  # not text: SecretStr's own validation refuses it
        if len(text) < self.min_length:
            raise PydanticKnownError("string_too_short", {"min_length": self.min_length})
        if len(text) > self.max_length:
            raise PydanticKnownError("string_too_long", {"max_length": self.max_length})
        if self.check is not None:
            text = self.check(text)
        return value if isinstance(value, SecretStr) else text
