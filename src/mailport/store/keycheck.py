"""The key-check canary: a wrong or missing encryption key fails at startup, not later.

The first start stores one value encrypted with the key ring. Every start decrypts it: if no
configured key can, the keys do not match the stored secrets and the service refuses to start
with :class:`~mailport.errors.SecretKeyError` instead of running with unreadable data.
"""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from mailport.clock import utc_now
from mailport.crypto import KeyRing
from mailport.errors import SecretKeyError
from mailport.store.database import Database
from mailport.store.tables import key_check

CANARY = "mailport-key-check"


async def verify_key_ring(database: Database, key_ring: KeyRing) -> None:
    """Raise ``SecretKeyError`` unless ``key_ring`` decrypts the stored canary (creating it once)."""
    async with database.transaction() as conn:
        token = (await conn.execute(select(key_check.c.token).where(key_check.c.id == 1))).scalar()
        if token is None:
            try:
                await conn.execute(
                    insert(key_check).values(id=1, token=key_ring.encrypt(CANARY), updated_at=utc_now())
                )
            except IntegrityError:  # another process created it first; check theirs below
                token = None
            else:
                return
    if token is None:
        async with database.connect() as conn:
            token = (await conn.execute(select(key_check.c.token).where(key_check.c.id == 1))).scalar_one()
    try:
        ok = key_ring.decrypt(str(token)) == CANARY
    except SecretKeyError as exc:
        raise SecretKeyError(
            f"the configured secret keys ({key_ring.source}) cannot decrypt the secrets stored in "
            f"{database.url}: the key is wrong, or the key that encrypted them is missing from the ring"
        ) from exc
    if not ok:
        raise SecretKeyError("the key-check value in the database is corrupt")
