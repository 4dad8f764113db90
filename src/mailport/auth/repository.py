"""The ``tenant_jwt`` table: one verifier per tenant, its HS256 secret encrypted with the key ring.

Rows come back as :class:`~mailport.auth.models.JwtVerifier` whose secret is a
:class:`~mailport.crypto.Sealed`: ciphertext until a token is actually verified with it.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mailport.auth.models import JwtVerifier
from mailport.crypto import Cipher, Sealed
from mailport.errors import NotFoundError
from mailport.store.database import Database
from mailport.store.ids import new_id, plausible_id
from mailport.store.tables import tenant_jwt


class JwtRepository:
    def __init__(self, database: Database, cipher: Cipher) -> None:
        self._db = database
        self._cipher = cipher

    def _verifier(self, row: Any) -> JwtVerifier:
        return JwtVerifier(
            tenant_id=row.tenant_id,
            kind=row.kind,
            algorithms=tuple(json.loads(row.algorithms)),
            secret=Sealed.of(row.secret_enc, self._cipher),
            jwks_url=row.jwks_url,
            issuer=row.issuer,
            audience=row.audience,
            leeway_seconds=row.leeway_seconds,
            owner_claim=row.owner_claim,
            tenant_claim=row.tenant_claim,
            tenant_value=row.tenant_value,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def get(self, tenant_id: str) -> JwtVerifier | None:
        if not plausible_id(tenant_id):
            return None
        async with self._db.connect() as conn:
            row = (await conn.execute(select(tenant_jwt).where(tenant_jwt.c.tenant_id == tenant_id))).first()
        return None if row is None else self._verifier(row)

    async def by_issuer(self, issuer: str | None) -> list[JwtVerifier]:
        """Every tenant's verifier for ``issuer`` (None: the verifiers with no issuer)."""
        where = tenant_jwt.c.issuer.is_(None) if issuer is None else tenant_jwt.c.issuer == issuer
        async with self._db.connect() as conn:
            rows = await conn.execute(select(tenant_jwt).where(where).order_by(tenant_jwt.c.tenant_id))
            return [self._verifier(row) for row in rows]

    async def save(self, verifier: JwtVerifier) -> JwtVerifier:
        """Insert or replace the tenant's verifier (``created_at`` kept on a replace)."""
        secret = verifier.secret
        secret_enc = None
        if secret is not None:
            sealed = secret.sealed_by(self._cipher) if isinstance(secret, Sealed) else None
            secret_enc = sealed or self._cipher.encrypt(secret.reveal())
        values = {
            "kind": verifier.kind,
            "secret_enc": secret_enc,
            "jwks_url": verifier.jwks_url,
            "algorithms": json.dumps(list(verifier.algorithms)),
            "issuer": verifier.issuer,
            "audience": verifier.audience,
            "leeway_seconds": verifier.leeway_seconds,
            "owner_claim": verifier.owner_claim,
            "tenant_claim": verifier.tenant_claim,
            "tenant_value": verifier.tenant_value,
            "updated_at": verifier.updated_at,
        }
        where = tenant_jwt.c.tenant_id == verifier.tenant_id
        try:
            async with self._db.transaction() as conn:
                changed = await conn.execute(update(tenant_jwt).where(where).values(**values))
                if changed.rowcount == 0:
                    await conn.execute(
                        insert(tenant_jwt).values(
                            id=new_id("jwt"),
                            tenant_id=verifier.tenant_id,
                            created_at=verifier.updated_at,
                            **values,
                        )
                    )
                row = (await conn.execute(select(tenant_jwt).where(where))).one()
        except IntegrityError as exc:  # the tenant was deleted meanwhile (or a concurrent insert)
            raise NotFoundError(f"no tenant {verifier.tenant_id!r}") from exc
        return self._verifier(row)

    async def delete(self, tenant_id: str) -> bool:
        if not plausible_id(tenant_id):
            return False
        async with self._db.transaction() as conn:
            result = await conn.execute(delete(tenant_jwt).where(tenant_jwt.c.tenant_id == tenant_id))
        return bool(result.rowcount)
