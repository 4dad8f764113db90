"""Changes made on an IMAP server since a token: flag changes and expunges of known messages.

Three ways, the best the server offers (the token records which one made it):

* ``q`` — **QRESYNC** (RFC 7162, enabled before SELECT): the token is the folder's
  HIGHESTMODSEQ. A check costs a ``NOOP`` and a ``STATUS (HIGHESTMODSEQ)``; only when it moved, one
  ``UID FETCH 1:<last ingested> (UID FLAGS MODSEQ) (CHANGEDSINCE m VANISHED)`` returns the changed
  flags and the expunged UIDs together. Exact, whatever the folder's size.
* ``c`` — **CONDSTORE** without QRESYNC (Gmail): flags as above (without VANISHED); expunges by
  comparing ``UID SEARCH`` with the UIDs of the token — the newest :data:`WINDOW` messages only.
* ``s`` — **neither**: the token is a snapshot of UID -> flags of the newest :data:`WINDOW`
  messages (stored compactly: per set of flags, the UIDs as an IMAP sequence set), and each check
  is ``UID FETCH <lowest>:<last ingested> (UID FLAGS)`` compared with it.

Limits, honestly: in ``c`` and ``s`` a message older than the newest :data:`WINDOW` (10,000) of
its folder is not watched for expunges (``s``: nor for flag changes); a change that is undone
between two checks is not seen in ``s`` (a snapshot compares states, not histories); and when
the way changes (the server stops offering QRESYNC, or it could not be enabled in this session)
the part of the token the new way cannot use starts afresh, so changes in that interval are not
reported. A server may report a UID as vanished that this client never saw (RFC 7162, 3.2.10
allows it); such a ``message.deleted`` names a message nobody knew.

Only messages up to the ingestion cursor (``until``) are reported: later ones are new mail,
which ``message.received`` announces with their flags.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mailport.connectors.base import ChangeSet, Cursor, MessageChange, ScopeState
from mailport.connectors.folders import Folder, Role, display_name, role_of
from mailport.errors import CommandError
from mailport.imap import ImapClient
from mailport.imap.arguments import uid_set
from mailport.imap.parser import parse_sequence_set

WINDOW = 10_000  # the newest messages of a folder watched without QRESYNC
FETCH_TIMEOUT = 300.0

_NEUTRAL = {"\\seen": "seen", "\\flagged": "flagged", "\\answered": "answered", "\\draft": "draft"}


def neutral_flags(flags: Iterable[str]) -> tuple[str, ...]:
    """IMAP flags in neutral names: the four system flags renamed, keywords kept as spelled,
    and the other system flags (``\\Recent``, ``\\Deleted``) left out."""
    named = [_NEUTRAL[f.lower()] for f in flags if f.lower() in _NEUTRAL]
    keywords = sorted(f for f in flags if not f.startswith("\\"))
    return (*sorted(named), *keywords)


_KEPT: dict[tuple[str, ...], tuple[str, ...]] = {}


def _kept(flags: tuple[str, ...]) -> tuple[str, ...]:
    """The flags a snapshot compares (``\\Recent`` belongs to the session, not the message);
    flag combinations repeat, so they are cached."""
    kept = _KEPT.get(flags)
    if kept is None:
        kept = tuple(sorted(f for f in flags if f.lower() != "\\recent"))
        if len(_KEPT) < 1024:
            _KEPT[flags] = kept
    return kept


@dataclass
class Token:
    """The decoded token: the way (``q``/``c``/``s``), the count of snapshot diffs that found
    changes (their version), and what the way needs."""

    mode: str
    diffs: int = 0
    modseq: int | None = None
    lowest: int = 1
    uids: list[int] | None = None  # c: the watched UIDs
    flags: dict[int, tuple[str, ...]] | None = None  # s: the watched UIDs' flags

    def known_uids(self) -> list[int] | None:
        if self.uids is not None:
            return self.uids
        return sorted(self.flags) if self.flags is not None else None

    def encode(self) -> str:
        out: dict[str, Any] = {"m": self.mode, "n": self.diffs}
        if self.modseq is not None:
            out["ms"] = self.modseq
        if self.mode != "q":
            out["lo"] = self.lowest
        if self.uids is not None:
            out["u"] = uid_set(self.uids).decode() if self.uids else ""
        if self.flags is not None:
            groups: dict[str, list[int]] = {}
            for uid, flags in self.flags.items():
                groups.setdefault(" ".join(flags), []).append(uid)
            out["f"] = {key: uid_set(uids).decode() for key, uids in groups.items()}
        return json.dumps(out, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def decode(cls, text: str | None) -> Token | None:
        """None for no token, or one this module did not write (then the streams start afresh)."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            token = cls(str(raw["m"]), int(raw.get("n", 0)), raw.get("ms"), int(raw.get("lo", 1)))
            if "u" in raw:
                token.uids = parse_sequence_set(raw["u"].encode()) if raw["u"] else []
            if "f" in raw:
                token.flags = {
                    uid: tuple(key.split()) for key, uids in raw["f"].items() for uid in _uids(uids)
                }
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return token


def _uids(text: str) -> list[int]:
    return parse_sequence_set(text.encode()) if text else []


class ImapChanges:
    """One check of one selected folder (the connector's thin method builds it)."""

    def __init__(self, client: ImapClient, state: ScopeState, *, qresync: bool) -> None:
        self.client = client
        self.state = state
        self.qresync = qresync
        self.uidvalidity = int(state.epoch)

    def _source(self, uid: int, modseq: int | None = None) -> dict[str, Any]:
        imap: dict[str, Any] = {"folder": self.state.scope, "uidvalidity": self.uidvalidity, "uid": uid}
        if modseq is not None:
            imap["modseq"] = modseq
        return {"imap": imap}

    def _updated(self, uid: int, flags: Sequence[str], version: str, modseq: int | None) -> MessageChange:
        return MessageChange(str(uid), neutral_flags(flags), version, source=self._source(uid, modseq))

    def _deleted(self, uid: int) -> MessageChange:
        return MessageChange(str(uid), None, "", source=self._source(uid))

    async def run(self, token: str | None, until: Cursor) -> ChangeSet:
        last = int(until.position) if until.epoch == self.state.epoch else 0
        old = Token.decode(token)
        mode = "q" if self.qresync else "c" if self.client.has("CONDSTORE") else "s"
        # A session sees the selected folder as it last synchronised it (Dovecot answers STATUS
        # of the selected folder from that view): NOOP brings it up to date first.
        await self.client.noop()
        highest: int | None = None
        if mode != "s":
            status = await self.client.status(self.state.scope, ["HIGHESTMODSEQ"])
            highest = status.get("HIGHESTMODSEQ")
            if not highest:  # a folder without mod-sequences (RFC 7162 NOMODSEQ)
                mode = "s"
        new = Token(mode, diffs=old.diffs if old is not None else 0)
        found: list[MessageChange] = []
        if mode == "s":
            found += await self._snapshot(old, new, last)
            if old is not None and not found and new.flags == old.flags and new.lowest == old.lowest:
                return ChangeSet([], token or "")  # unchanged: not encoded again
        else:
            assert highest is not None
            new.modseq = highest
            found += await self._modseq(old, highest, last)
            if mode == "c":
                found += await self._expunged(old, new, last)
        return ChangeSet(found, new.encode())

    async def _modseq(self, old: Token | None, highest: int, last: int) -> list[MessageChange]:
        """Flags changed (and with QRESYNC, messages expunged) since the old token's modseq."""
        since = old.modseq if old is not None else None
        if since is None or highest <= since or last < 1:
            return []
        fetched, gone = await self.client.changed_since(
            f"1:{last}", since, vanished=self.qresync, timeout=FETCH_TIMEOUT
        )
        out = [
            self._updated(m.uid, m.flags or (), str(m.modseq) if m.modseq else f"m{highest}", m.modseq)
            for m in sorted(fetched, key=lambda m: m.uid or 0)
            if m.uid is not None and m.uid <= last and m.flags is not None
        ]
        out += [self._deleted(uid) for uid in sorted(set(gone)) if uid <= last]
        return out

    async def _expunged(self, old: Token | None, new: Token, last: int) -> list[MessageChange]:
        """CONDSTORE only: the watched UIDs that are gone (``UID SEARCH`` of the window)."""
        known = old.known_uids() if old is not None else None
        lowest = old.lowest if old is not None and known is not None else 1
        present = (
            await self.client.search(f"UID {lowest}:{last}", timeout=FETCH_TIMEOUT) if last >= lowest else []
        )
        present = [uid for uid in present if lowest <= uid <= last]
        out: list[MessageChange] = []
        if known is not None:
            here = set(present)
            out = [self._deleted(uid) for uid in known if lowest <= uid <= last and uid not in here]
        watched = sorted(set(present))[-WINDOW:]
        new.uids = watched
        new.lowest = watched[0] if watched else lowest
        return out

    async def _snapshot(self, old: Token | None, new: Token, last: int) -> list[MessageChange]:
        """No mod-sequences: compare the flags of the window with the old snapshot."""
        before = old.flags if old is not None else None
        if before is None:
            if last < 1:
                new.flags, new.lowest = {}, 1
                return []
            uids = await self.client.search(f"UID 1:{last}", timeout=FETCH_TIMEOUT)
            watched = [uid for uid in uids if uid <= last][-WINDOW:]
            new.lowest = watched[0] if watched else 1
            new.flags = await self._flags(new.lowest, last) if watched else {}
            return []
        assert old is not None
        lowest = old.lowest
        now = await self._flags(lowest, last) if last >= lowest else {}
        version = f"s{old.diffs + 1}"
        out: list[MessageChange] = []
        for uid, flags in sorted(before.items()):
            if uid < lowest or uid > last:
                continue
            if uid not in now:
                out.append(self._deleted(uid))
            elif now[uid] != flags:
                out.append(self._updated(uid, now[uid], version, None))
        if out:
            new.diffs = old.diffs + 1
        watched = sorted(now)[-WINDOW:]
        new.flags = {uid: now[uid] for uid in watched}
        new.lowest = watched[0] if watched else lowest
        return out

    async def _flags(self, lowest: int, last: int) -> dict[int, tuple[str, ...]]:
        fetched = await self.client.fetch(f"{lowest}:{last}", ("UID", "FLAGS"), timeout=FETCH_TIMEOUT)
        return {m.uid: _kept(m.flags or ()) for m in fetched if m.uid is not None and lowest <= m.uid <= last}


async def enable_qresync(client: ImapClient) -> bool:
    """Switch QRESYNC on where the server offers it (before SELECT, RFC 5161); False when it
    is not offered or the server refused (the check then uses CONDSTORE or a snapshot)."""
    if "QRESYNC" in client.enabled:
        return True
    if not (client.has("QRESYNC") and client.has("ENABLE")):
        return False
    try:
        return "QRESYNC" in await client.enable("QRESYNC")
    except CommandError:
        return False


async def folder_tree(client: ImapClient) -> list[Folder]:
    """Every folder with its role, without counts: ``NAMESPACE`` and one ``LIST`` (what a
    folder diff needs, for a fraction of a listing with counts)."""
    namespaces = await client.namespace()
    prefix = namespaces.personal[0].prefix if namespaces.personal else ""
    folders = [
        Folder(
            path=entry.name,
            delimiter=entry.delimiter,
            name=display_name(entry.name, entry.delimiter),
            role=role_of(entry.name, delimiter=entry.delimiter, flags=entry.flags, prefix=prefix),
            messages=None,
            unseen=None,
            subscribed=False,
            selectable=entry.selectable,
        )
        for entry in await client.list_mailboxes()
    ]
    return sorted(folders, key=lambda f: (f.role is not Role.INBOX, f.path))
