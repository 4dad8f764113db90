"""Storage: SQLAlchemy 2 (async) tables, repositories and Alembic migrations.

The same code runs on SQLite (aiosqlite, the embedded default) and PostgreSQL (asyncpg),
chosen by ``MAILPORT_DATABASE_URL``. Secrets are encrypted and decrypted here, explicitly,
with the key ring the composition root hands in; nothing above this layer sees ciphertext
and nothing below it sees plaintext.
"""

from mailport.store.database import Database, open_database
from mailport.store.keycheck import verify_key_ring
from mailport.store.migrate import current_revision, head_revision, upgrade

__all__ = [
    "Database",
    "current_revision",
    "head_revision",
    "open_database",
    "upgrade",
    "verify_key_ring",
]
