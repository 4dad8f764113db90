"""Request and response bodies of the tenant admin API (never ORM rows)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from mailport.validation import RequestModel


class TenantCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200, description="A unique name for the organisation")

    @field_validator("name")
    @classmethod
    def _clean(cls, value: str) -> str:
        value = value.strip()
        if not value or not value.isprintable():
            raise ValueError("name must be non-blank printable text")
        return value


class TenantRead(BaseModel):
    id: str
    name: str
    created_at: datetime


class TenantCreated(TenantRead):
    api_key: str = Field(description="The tenant's first API key; shown this once, store it now")


class TenantPage(BaseModel):
    items: list[TenantRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end")


class ApiKeyRead(BaseModel):
    id: str
    prefix: str = Field(description="The key's first characters, to recognise it")
    created_at: datetime
    revoked_at: datetime | None
    active: bool


class ApiKeyCreated(ApiKeyRead):
    api_key: str = Field(description="The new key; shown this once, store it now")


class ApiKeyList(BaseModel):
    items: list[ApiKeyRead]
