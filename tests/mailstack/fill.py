"""Fill a mailbox with many messages fast.

* :func:`fill` works over IMAP on any server and namespace layout: MULTIAPPEND (RFC 3502)
  batches sent with LITERAL+, a few dozen round trips for 10,000 messages (yet ~30 s against
  the bed here: Dovecot syncs every file it saves).
* :func:`fill_maildir` writes the bed's maildir files directly before Dovecot first looks at
  the user: for test fixtures and bench/ against the local bed.

Messages are numbered from 0 in the order they are appended, so UIDs rise with the number;
:func:`numbered_message` is the default shape (its subject is ``message <n>`` and its
Message-ID ``<n.fill@example.test>``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailport.imap import ImapClient
    from tests.mailstack.dovecot import Dovecot

BATCH = 500


_FILLER = "Some text to make it look like mail. " * 8


def numbered_message(n: int) -> bytes:
    """A small plain-text message (formatted, not built with :mod:`email`: that costs ~3 ms a
    message here, most of a 10,000-message fill)."""
    return (
        f"From: Sender {n % 50} <sender{n % 50}@example.test>\r\n"
        "To: reader@example.test\r\n"
        f"Subject: message {n}\r\n"
        "Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
        f"Message-ID: <{n}.fill@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        f"Body of message {n}.\r\n{_FILLER}\r\n"
    ).encode()


async def fill(
    client: ImapClient,
    folder: str,
    count: int,
    *,
    make: Callable[[int], bytes] = numbered_message,
    start: int = 0,
    flags: Sequence[str] = (),
    batch: int = BATCH,
) -> None:
    """Append ``count`` messages ``make(start) … make(start + count - 1)`` to ``folder``."""
    for first in range(start, start + count, batch):
        messages = [make(n) for n in range(first, min(first + batch, start + count))]
        await client.append_many(folder, messages, flags=flags, timeout=120)


def fill_maildir(
    dovecot: Dovecot, user: str, count: int, *, make: Callable[[int], bytes] = numbered_message
) -> None:
    """Write ``count`` messages straight into a fresh user's INBOX maildir before Dovecot has
    indexed it (no IMAP, no fsync per message). Dovecot assigns UIDs in the order of the names' timestamps, so
    message n gets UID n + 1; each file's mtime (its INTERNALDATE) is one second after the last.
    """
    local, _, domain = user.partition("@")
    home = dovecot.root / "mail" / domain / local
    maildir = home / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    base = 1_700_000_000
    for n in range(count):
        raw = make(n)
        path = maildir / "cur" / f"{base + n}.M{n}P1.fill,S={len(raw)}:2,"
        path.write_bytes(raw)
        os.utime(path, (base + n, base + n))
    ident = dovecot._identity()
    if ident["mail_uid"] is not None:  # root: the mail processes run as another user
        for directory, _, files in os.walk(home.parent):
            os.chown(directory, ident["mail_uid"], ident["mail_gid"])
            for name in files:
                os.chown(os.path.join(directory, name), ident["mail_uid"], ident["mail_gid"])
