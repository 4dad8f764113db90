"""Tenants and API keys in the database (keys only as a prefix and a SHA-256 hash)."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement

from mailport.errors import ConflictError, NotFoundError
from mailport.store.database import Database
from mailport.store.ids import new_id, plausible_id
from mailport.store.tables import api_keys, tenants
from mailport.tenants.models import ApiKey, Tenant

RecordT = TypeVar("RecordT", Tenant, ApiKey)


def _from_row(model: type[RecordT], row: Any) -> RecordT:
    """The ``model`` from the columns of its fields' names (a key's hash stays in the row)."""
    return model(**{f.name: getattr(row, f.name) for f in fields(model)})


def _tenant(row: Any) -> Tenant:
    return _from_row(Tenant, row)


def _key(row: Any) -> ApiKey:
    return _from_row(ApiKey, row)


class TenantRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, name: str, *, now: datetime) -> Tenant:
        tenant = Tenant(id=new_id("ten"), name=name, created_at=now)
        try:
            async with self._db.transaction() as conn:
                await conn.execute(insert(tenants).values(id=tenant.id, name=name, created_at=now))
        except IntegrityError as exc:
            raise ConflictError(f"a tenant named {name!r} already exists", field="name") from exc
        return tenant

    async def get(self, tenant_id: str) -> Tenant:
        return await self._one(tenants.c.id == tenant_id, plausible_id(tenant_id), f"no tenant {tenant_id!r}")

    async def get_by_name(self, name: str) -> Tenant:
        return await self._one(tenants.c.name == name, name.isprintable(), f"no tenant named {name!r}")

    async def _one(self, where: ColumnElement[bool], plausible: bool, missing: str) -> Tenant:
        """The tenant ``where`` selects; a key that cannot be one is not looked up (a 404 either way)."""
        if plausible:
            async with self._db.connect() as conn:
                row = (await conn.execute(select(tenants).where(where))).first()
            if row is not None:
                return _tenant(row)
        raise NotFoundError(missing)

    async def page(self, *, after: str | None = None, limit: int = 50) -> list[Tenant]:
        query = select(tenants).order_by(tenants.c.id).limit(limit)
        if after is not None:
            query = query.where(tenants.c.id > after)
        async with self._db.connect() as conn:
            return [_tenant(row) for row in await conn.execute(query)]

    async def delete(self, tenant_id: str) -> None:
        await self.get(tenant_id)
        async with self._db.transaction() as conn:
            result = await conn.execute(delete(tenants).where(tenants.c.id == tenant_id))
        if result.rowcount == 0:
            raise NotFoundError(f"no tenant {tenant_id!r}")

    # --- API keys -----------------------------------------------------------------------

    async def add_key(self, tenant_id: str, *, prefix: str, key_hash: str, now: datetime) -> ApiKey:
        await self.get(tenant_id)
        key = ApiKey(id=new_id("key"), tenant_id=tenant_id, prefix=prefix, created_at=now)
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    insert(api_keys).values(
                        id=key.id, tenant_id=tenant_id, prefix=prefix, key_hash=key_hash, created_at=now
                    )
                )
        except IntegrityError as exc:
            raise NotFoundError(f"no tenant {tenant_id!r}") from exc
        return key

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        query = select(api_keys).where(api_keys.c.tenant_id == tenant_id).order_by(api_keys.c.id)
        async with self._db.connect() as conn:
            return [_key(row) for row in await conn.execute(query)]

    async def revoke_key(self, tenant_id: str, key_id: str, *, now: datetime) -> ApiKey:
        if not (plausible_id(tenant_id) and plausible_id(key_id)):
            raise NotFoundError(f"no API key {key_id!r} for tenant {tenant_id!r}")
        async with self._db.transaction() as conn:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id)
                .where(api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = (
                await conn.execute(
                    select(api_keys).where(api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id)
                )
            ).first()
        if row is None:
            raise NotFoundError(f"no API key {key_id!r} for tenant {tenant_id!r}")
        return _key(row)

    async def find_active_key(self, key_hash: str) -> tuple[ApiKey, str] | None:
        """The active key with this hash and its stored hash (for a constant-time compare)."""
        query = select(api_keys).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else (_key(row), str(row.key_hash))
