"""The IMAP commands of mailport's client, their result objects, and IDLE.

:class:`ImapClient` adds the commands to :class:`~mailport.imap.session.ImapSession`
(connection steps, authentication, deadlines, events): CAPABILITY, ID, ENABLE, LIST with
SPECIAL-USE, STATUS, SELECT/EXAMINE with CONDSTORE/QRESYNC, UID SEARCH, UID FETCH (parsed
into :class:`FetchedMessage` objects as the bytes arrive), UID STORE, UID COPY, UID MOVE
(falling back to COPY + ``\\Deleted`` + UID EXPUNGE), APPEND/MULTIAPPEND, EXPUNGE, NOOP,
LOGOUT and IDLE. See ``docs/imap.md``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Self

from mailport.errors import (
    CommandError,
    MailportError,
    MailTimeoutError,
    MessageTooLargeError,
    ProtocolError,
    UnsupportedFeatureError,
)
from mailport.imap import utf7
from mailport.imap.arguments import Arg, Literal, UIDs, imap_date, mailbox_arg, quote, uid_set
from mailport.imap.models import (
    AppendResult,
    EventKind,
    FetchedMessage,
    ListEntry,
    Namespace,
    Namespaces,
    SelectInfo,
    ServerEvent,
)
from mailport.imap.parser import (
    StatusText,
    as_int,
    as_list,
    as_str,
    pairs,
    parse_fetch,
    parse_sequence_set,
    parse_status_text,
    parse_values,
)
from mailport.imap.session import ImapSession, fetch_event, vanished_uids
from mailport.imap.transport import (
    tls_layer,
)

FETCH_ITEMS = ("UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODY.PEEK[]")
HEADER_ITEMS = ("UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODY.PEEK[HEADER]")


class ImapClient(ImapSession):
    """One IMAP connection with its commands. Commands are serialised; IDLE excludes other commands."""

    __slots__ = ()

    async def __aenter__(self) -> Self:
        if self._proto is None:
            await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.logout()

    # ================================================================== commands

    async def id(self, fields: dict[str, str] | None = None) -> dict[str, str] | None:
        """RFC 2971 ID: send ours (or NIL), return the server's."""
        await self._ensure_caps()
        if not self.has("ID"):
            raise UnsupportedFeatureError(f"{self.host}: the server does not support ID")
        if fields:
            items: list[bytes] = []
            for key, value in fields.items():
                items += [_quoted(key), _quoted(value)]
            arg = b"(" + b" ".join(items) + b")"
        else:
            arg = b"NIL"
        result = await self._run(b"ID", arg, wants=(b"ID",))
        for _, _, offset, response in result.untagged:
            values = parse_values(response, 0, offset)
            if values and isinstance(values[0], list):
                flat = values[0]
                return {as_str(flat[i]): as_str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
        return None

    async def enable(self, *capabilities: str) -> frozenset[str]:
        """RFC 5161 ENABLE (e.g. ``CONDSTORE``, ``QRESYNC``); returns what the server enabled."""
        await self._ensure_caps()
        if not self.has("ENABLE"):
            raise UnsupportedFeatureError(f"{self.host}: the server does not support ENABLE")
        result = await self._run(b"ENABLE", *(c.encode() for c in capabilities), wants=(b"ENABLED",))
        enabled = set(self._enabled)
        for _, _, offset, response in result.untagged:
            enabled.update(c.decode().upper() for c in response.first[offset:].split())
        self._enabled = frozenset(enabled)
        return self._enabled

    async def list_mailboxes(self, reference: str = "", pattern: str = "*") -> list[ListEntry]:
        """LIST, with ``RETURN (SPECIAL-USE)`` when the server offers it; names decoded from UTF-7."""
        await self._ensure_caps()
        args: list[Arg] = [
            b"LIST",
            mailbox_arg(reference) if reference else b'""',
            quote(utf7.encode(pattern)),
        ]
        # Not for the empty pattern: it asks for the hierarchy separator (RFC 3501 6.3.8), and
        # Dovecot answers the extended form of that with no LIST at all.
        if pattern and self.has("SPECIAL-USE") and self.has("LIST-EXTENDED"):
            args.append(b"RETURN (SPECIAL-USE)")
        result = await self._run(*args, wants=(b"LIST",))
        entries: list[ListEntry] = []
        for _, _, offset, response in result.untagged:
            entries.append(_list_entry(parse_values(response, 0, offset), response))
        return entries

    async def list_with_status(self, pattern: str = "*") -> tuple[list[ListEntry], dict[str, dict[str, int]]]:
        """One round trip for a folder tree: ``LIST … RETURN (SPECIAL-USE SUBSCRIBED STATUS
        (MESSAGES UNSEEN))`` (RFC 5258, 5819, 6154). Only for servers that offer LIST-EXTENDED
        and LIST-STATUS; returns the entries (``\\Subscribed`` among their flags) and the counts
        by folder name."""
        await self._ensure_caps()
        returns = b"RETURN (SUBSCRIBED STATUS (MESSAGES UNSEEN))"
        if self.has("SPECIAL-USE"):
            returns = b"RETURN (SPECIAL-USE SUBSCRIBED STATUS (MESSAGES UNSEEN))"
        result = await self._run(
            b"LIST", b'""', quote(utf7.encode(pattern)), returns, wants=(b"LIST", b"STATUS")
        )
        entries: list[ListEntry] = []
        counts: dict[str, dict[str, int]] = {}
        for _, kind, offset, response in result.untagged:
            values = parse_values(response, 0, offset)
            if kind.upper() == b"STATUS":
                if len(values) >= 2 and isinstance(values[0], bytes):
                    items = pairs(as_list(values[1])).items()
                    counts[utf7.decode(values[0])] = {k.decode().upper(): as_int(v) for k, v in items}
                continue
            entries.append(_list_entry(values, response))
        return entries, counts

    async def subscribed(self, pattern: str = "*") -> set[str]:
        """The names LSUB reports (servers without LIST-EXTENDED)."""
        result = await self._run(b"LSUB", b'""', quote(utf7.encode(pattern)), wants=(b"LSUB",))
        names: set[str] = set()
        for _, _, offset, response in result.untagged:
            names.add(_list_entry(parse_values(response, 0, offset), response).name)
        return names

    async def namespace(self) -> Namespaces:
        """RFC 2342 NAMESPACE: where personal folders live (prefix) and their separator.

        Servers without NAMESPACE get one personal namespace with an empty prefix and the
        separator that ``LIST "" ""`` reports (RFC 3501 6.3.8)."""
        await self._ensure_caps()
        if not self.has("NAMESPACE"):
            entries = await self.list_mailboxes("", "")
            delimiter = entries[0].delimiter if entries else None
            return Namespaces(personal=(Namespace("", delimiter),))
        result = await self._run(b"NAMESPACE", wants=(b"NAMESPACE",))
        for _, _, offset, response in result.untagged:
            values = parse_values(response, 0, offset)
            groups = [_namespaces(values[i] if i < len(values) else None) for i in range(3)]
            return Namespaces(*groups)
        raise ProtocolError(f"{self.host}: NAMESPACE returned no namespaces")

    async def create(self, mailbox: str) -> None:
        """CREATE a mailbox (name encoded in modified UTF-7)."""
        await self._run(b"CREATE", mailbox_arg(mailbox))

    async def delete(self, mailbox: str) -> None:
        await self._run(b"DELETE", mailbox_arg(mailbox))

    async def status(self, mailbox: str, items: Sequence[str] | None = None) -> dict[str, int]:
        """STATUS (MESSAGES UIDNEXT UIDVALIDITY UNSEEN [HIGHESTMODSEQ]) -> ``{"MESSAGES": 3, ...}``."""
        await self._ensure_caps()
        if items is None:
            items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"]
            if self.has("CONDSTORE"):
                items.append("HIGHESTMODSEQ")
        arg = b"(" + " ".join(items).encode() + b")"
        result = await self._run(b"STATUS", mailbox_arg(mailbox), arg, wants=(b"STATUS",))
        out: dict[str, int] = {}
        for _, _, offset, response in result.untagged:
            values = parse_values(response, 0, offset)
            if len(values) >= 2:
                out.update({k.decode().upper(): as_int(v) for k, v in pairs(as_list(values[1])).items()})
        return out

    async def select(
        self,
        mailbox: str = "INBOX",
        *,
        readonly: bool = False,
        condstore: bool | None = None,
        qresync: tuple[int, int] | None = None,
    ) -> SelectInfo:
        """SELECT (or EXAMINE with ``readonly``): UIDVALIDITY, UIDNEXT, EXISTS, HIGHESTMODSEQ ...

        CONDSTORE is requested when the server offers it (``condstore=None``); ``qresync``
        (uidvalidity, modseq) enables QRESYNC if needed and returns VANISHED UIDs in the result.
        """
        await self._ensure_caps()
        args: list[Arg] = [b"EXAMINE" if readonly else b"SELECT", mailbox_arg(mailbox)]
        if qresync is not None:
            if not self.has("QRESYNC"):
                raise UnsupportedFeatureError(f"{self.host}: the server does not support QRESYNC")
            if "QRESYNC" not in self._enabled:
                await self.enable("QRESYNC")
            args.append(b"(QRESYNC (%d %d))" % qresync)
        elif condstore or (condstore is None and self.has("CONDSTORE")):
            args.append(b"(CONDSTORE)")
        self._selected = None
        result = await self._run(
            *args, wants=(b"FLAGS", b"EXISTS", b"RECENT", b"OK", b"NO", b"VANISHED", b"FETCH")
        )
        info = SelectInfo(mailbox=mailbox, read_only=readonly or result.text.code == "READ-ONLY")
        for number, kind, offset, response in result.untagged:
            rest = response.first[offset:]
            if kind == b"EXISTS" and number is not None:
                info.exists = number
            elif kind == b"RECENT" and number is not None:
                info.recent = number
            elif kind == b"FLAGS":
                info.flags = _flag_names(as_list(parse_values(response, 0, offset)[0]))
            elif kind == b"VANISHED":
                info.vanished.extend(vanished_uids(response, offset))
            elif kind == b"FETCH" and number is not None:
                info.changed.append(parse_fetch(number, response, offset))
            elif kind in (b"OK", b"NO"):
                text = parse_status_text(rest)
                if text.code == "UIDVALIDITY":
                    info.uidvalidity = int(text.code_args)
                elif text.code == "UIDNEXT":
                    info.uidnext = int(text.code_args)
                elif text.code == "HIGHESTMODSEQ":
                    info.highestmodseq = int(text.code_args)
                elif text.code == "PERMANENTFLAGS":
                    info.permanent_flags = _flag_names(as_list(text.code_values[0]))
                elif text.code == "ALERT":
                    self._emit(ServerEvent(EventKind.ALERT, text=text.text))
        self._selected = mailbox
        return info

    async def examine(self, mailbox: str = "INBOX") -> SelectInfo:
        return await self.select(mailbox, readonly=True)

    async def search(self, criteria: str = "ALL", *, timeout: float | None = None) -> list[int]:
        """UID SEARCH with ASCII criteria (e.g. ``"UNSEEN"``, ``"UID 10:*"``) -> sorted UIDs."""
        try:
            raw = criteria.encode("ascii")
        except UnicodeEncodeError:
            raise UnsupportedFeatureError("search criteria must be ASCII") from None
        result = await self._run(b"UID SEARCH", raw, wants=(b"SEARCH", b"ESEARCH"), timeout=timeout)
        uids: list[int] = []
        for _, kind, offset, response in result.untagged:
            rest = response.first[offset:]
            if kind == b"SEARCH":
                uids.extend(int(x) for x in rest.split() if x.isdigit())
        return sorted(uids)

    async def uid_search(
        self, keys: Sequence[Arg], *, charset: str | None = None, timeout: float | None = None
    ) -> list[int]:
        """UID SEARCH with encoded keys (:mod:`mailport.connectors.imap_search` builds them;
        literals carry 8-bit text) -> sorted UIDs. ``UID SEARCH RETURN (ALL)`` where the server
        offers ESEARCH (RFC 4731): the answer is a compact UID set instead of every UID."""
        await self._ensure_caps()
        args: list[Arg] = [b"UID SEARCH"]
        if self.has("ESEARCH"):
            args.append(b"RETURN (ALL)")
        if charset:
            args += [b"CHARSET", charset.encode("ascii")]
        args += list(keys) or [b"ALL"]
        result = await self._run(*args, wants=(b"SEARCH", b"ESEARCH"), timeout=timeout)
        uids: set[int] = set()
        for _, kind, offset, response in result.untagged:
            if kind == b"SEARCH":
                uids.update(int(x) for x in response.first[offset:].split() if x.isdigit())
            elif kind == b"ESEARCH":
                uids.update(esearch_all(parse_values(response, 0, offset)))
        return sorted(uids)

    async def uid_thread(
        self, keys: Sequence[Arg], *, algorithm: str = "REFERENCES", timeout: float | None = None
    ) -> list[list[int]]:
        """UID THREAD (RFC 5256) over the messages matching ``keys``: one UID list per thread
        (the tree flattened, in the server's order)."""
        args: list[Arg] = [b"UID THREAD", algorithm.encode("ascii"), b"UTF-8", *(list(keys) or [b"ALL"])]
        result = await self._run(*args, wants=(b"THREAD",), timeout=timeout)
        threads: list[list[int]] = []
        for _, _, offset, response in result.untagged:
            for tree in parse_values(response, 0, offset):
                threads.append(_flatten_thread(tree))
        return threads

    async def fetch(
        self,
        uids: UIDs,
        items: Sequence[str] = FETCH_ITEMS,
        *,
        changedsince: int | None = None,
        timeout: float | None = None,
        oversize: str = "raise",
    ) -> list[FetchedMessage]:
        """UID FETCH -> one :class:`FetchedMessage` per message, in server order.

        A message literal larger than ``max_literal_size`` is skipped on the wire (the
        connection stays usable); with ``oversize="raise"`` (default) the call then raises
        :class:`MessageTooLargeError`, with ``"keep"`` the message comes back with ``oversize`` set.
        """
        names = " ".join(items)
        if "UID" not in items:
            names = "UID " + names
        args: list[Arg] = [b"UID FETCH", uid_set(uids), b"(" + names.encode() + b")"]
        if changedsince is not None:
            args.append(b"(CHANGEDSINCE %d)" % changedsince)
        fetched: list[FetchedMessage] = []
        layer = tls_layer(self._transport)
        if layer is not None:
            layer.bulk(True, bulk_slice=self.bulk_read_buffer)
        try:
            await self._run(*args, wants=(b"FETCH",), timeout=timeout, fetched=fetched)
        finally:
            if layer is not None:
                layer.bulk(False)
        wanted_body = any(
            "BODY" in i.upper() or "RFC822" == i.upper() or "BINARY" in i.upper() for i in items
        )
        # One pass in C for the usual case (every response carries the body that was asked for);
        # the rest are unsolicited flag updates for other messages and become events.
        if wanted_body:
            messages = [m for m in fetched if m.raw is not None and m.uid is not None]
        else:
            messages = [m for m in fetched if m.uid is not None]
        if len(messages) != len(fetched):
            messages = []
            for message in fetched:
                if message.uid is None or (
                    wanted_body
                    and message.raw is None
                    and message.headers is None
                    and message.oversize is None
                ):
                    self._emit(fetch_event(message))  # an unsolicited flag update for another message
                    continue
                messages.append(message)
        if oversize == "raise":
            for message in messages:
                if message.oversize is not None:
                    raise MessageTooLargeError(
                        f"message UID {message.uid} is {message.oversize} bytes, over the "
                        f"{self.max_literal_size}-byte maximum",
                        uid=message.uid,
                        size=message.oversize,
                    )
        return messages

    async def fetch_since(
        self, uid: int, *, headers_only: bool = False, timeout: float | None = None
    ) -> list[FetchedMessage]:
        """Messages with UID >= ``uid``: UID, flags, INTERNALDATE, size and the raw message (or header)."""
        messages = await self.fetch(
            f"{max(uid, 1)}:*", HEADER_ITEMS if headers_only else FETCH_ITEMS, timeout=timeout
        )
        return [m for m in messages if m.uid is not None and m.uid >= uid]

    async def changed_since(
        self, uids: UIDs, modseq: int, *, vanished: bool = False, timeout: float | None = None
    ) -> tuple[list[FetchedMessage], list[int]]:
        """``UID FETCH uids (UID FLAGS MODSEQ) (CHANGEDSINCE modseq [VANISHED])`` (RFC 7162): the
        messages whose flags changed after ``modseq``, each with its MODSEQ, and with
        ``vanished`` (QRESYNC enabled) the UIDs expunged since then."""
        modifier = b"(CHANGEDSINCE %d%s)" % (modseq, b" VANISHED" if vanished else b"")
        fetched: list[FetchedMessage] = []
        result = await self._run(
            b"UID FETCH",
            uid_set(uids),
            b"(UID FLAGS MODSEQ)",
            modifier,
            wants=(b"FETCH", b"VANISHED"),
            timeout=timeout,
            fetched=fetched,
        )
        gone: list[int] = []
        for _, kind, offset, response in result.untagged:
            if kind == b"VANISHED":
                gone.extend(vanished_uids(response, offset))
        return [m for m in fetched if m.uid is not None], gone

    async def store(
        self,
        uids: UIDs,
        flags: Iterable[str],
        *,
        mode: str = "+",
        silent: bool = True,
        unchangedsince: int | None = None,
    ) -> list[FetchedMessage]:
        """UID STORE: ``mode`` "+" adds, "-" removes, "" replaces flags; returns non-silent updates."""
        if mode not in ("+", "-", ""):
            raise ValueError("mode must be '+', '-' or ''")
        item = f"{mode}FLAGS{'.SILENT' if silent else ''}".encode()
        args: list[Arg] = [b"UID STORE", uid_set(uids)]
        if unchangedsince is not None:
            args.append(b"(UNCHANGEDSINCE %d)" % unchangedsince)
        args += [item, b"(" + " ".join(flags).encode() + b")"]
        result = await self._run(*args, wants=(b"FETCH",))
        return [parse_fetch(number or 0, response, offset) for number, _, offset, response in result.untagged]

    async def copy(self, uids: UIDs, destination: str) -> dict[int, int]:
        """UID COPY; returns old UID -> new UID when the server reports COPYUID (UIDPLUS)."""
        result = await self._run(b"UID COPY", uid_set(uids), mailbox_arg(destination))
        return _copyuid(result.text)

    async def move(self, uids: UIDs, destination: str) -> dict[int, int]:
        """UID MOVE, or UID COPY + \\Deleted + UID EXPUNGE when MOVE is not offered (needs UIDPLUS);
        returns old UID -> new UID when the server reports COPYUID."""
        return (await self.move_mapped(uids, destination))[1]

    async def expunge(self, uids: UIDs | None = None) -> list[int]:
        """EXPUNGE, or UID EXPUNGE for just ``uids`` (UIDPLUS); returns expunged sequence numbers/UIDs."""
        if uids is not None:
            await self._ensure_caps()
            if not self.has("UIDPLUS"):
                raise UnsupportedFeatureError(f"{self.host}: UID EXPUNGE needs UIDPLUS")
            result = await self._run(b"UID EXPUNGE", uid_set(uids), wants=(b"EXPUNGE", b"VANISHED"))
        else:
            result = await self._run(b"EXPUNGE", wants=(b"EXPUNGE", b"VANISHED"))
        out: list[int] = []
        for number, kind, offset, response in result.untagged:
            if kind == b"EXPUNGE" and number is not None:
                out.append(number)
            elif kind == b"VANISHED":
                out.extend(vanished_uids(response, offset))
        return out

    async def append(
        self,
        mailbox: str,
        message: bytes,
        *,
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
        timeout: float | None = None,
    ) -> AppendResult:
        """APPEND one message; returns the new UID when the server reports APPENDUID (UIDPLUS)."""
        args: list[Arg] = [b"APPEND", mailbox_arg(mailbox)]
        flag_list = list(flags)
        if flag_list:
            args.append(b"(" + " ".join(flag_list).encode() + b")")
        if internaldate is not None:
            args.append(imap_date(internaldate))
        args.append(Literal(message))
        result = await self._run(*args, timeout=timeout)
        return _appenduid(result.text)[0] if result.text.code == "APPENDUID" else AppendResult(None, None)

    async def append_many(
        self,
        mailbox: str,
        messages: Sequence[bytes],
        *,
        flags: Iterable[str] = (),
        timeout: float | None = None,
    ) -> list[AppendResult]:
        """Several messages in one APPEND (MULTIAPPEND, RFC 3502), else one APPEND each."""
        await self._ensure_caps()
        if not messages:
            return []
        if not self.has("MULTIAPPEND"):
            return [await self.append(mailbox, m, flags=flags, timeout=timeout) for m in messages]
        flag_arg = b"(" + " ".join(flags).encode() + b")"
        args: list[Arg] = [b"APPEND", mailbox_arg(mailbox)]
        for message in messages:
            args += [flag_arg, Literal(message)]
        result = await self._run(*args, timeout=timeout)
        return _appenduid(result.text) if result.text.code == "APPENDUID" else []

    # ---------------------------------------------------------- mailbox access (listings, actions)

    async def search_uids(self, criteria: bytes, *, timeout: float | None = None) -> list[int]:
        """UID SEARCH -> sorted UIDs; with ESEARCH (RFC 4731) as ``RETURN (ALL)``, whose compact
        set (``1:10000``) costs a few bytes where plain SEARCH lists every UID of a large folder.
        ``criteria`` is sent as given (the caller quotes; ASCII or after ``CHARSET UTF-8``)."""
        return await self.uid_search([criteria], timeout=timeout)

    async def fetch_attributes(
        self, uids: UIDs, items: Sequence[str], *, timeout: float | None = None
    ) -> list[dict[bytes, object]]:
        """UID FETCH of items the fast BODY[] path does not cover (BODYSTRUCTURE, header fields,
        PREVIEW …): one dict per message, keys upper-cased as the server named them
        (``b"BODY[HEADER.FIELDS (FROM)]"``), values as :func:`parse_values` gives them.
        Unsolicited flag updates of other messages become events, as in :meth:`fetch`."""
        names = " ".join(items) if "UID" in items else "UID " + " ".join(items)
        result = await self._run(
            b"UID FETCH", uid_set(uids), b"(" + names.encode() + b")", wants=(b"FETCH",), timeout=timeout
        )
        out: list[dict[bytes, object]] = []
        for number, _, offset, response in result.untagged:
            values = parse_values(response, 0, offset)
            if len(values) != 1 or not isinstance(values[0], list):
                raise ProtocolError(f"malformed FETCH response {response.first[:60]!r}")
            attrs = pairs(values[0])
            if b"UID" in attrs and set(attrs) - {b"UID", b"FLAGS", b"MODSEQ"}:
                out.append(attrs)
            else:
                self._emit(fetch_event(parse_fetch(number or 0, response, offset)))
        return out

    async def store_labels(self, uids: UIDs, labels: Iterable[str], *, mode: str = "+") -> None:
        """UID STORE ±X-GM-LABELS.SILENT (Gmail's labels; names in modified UTF-7, quoted)."""
        if mode not in ("+", "-"):
            raise ValueError("mode must be '+' or '-'")
        await self._ensure_caps()
        if not self.has("X-GM-EXT-1"):
            raise UnsupportedFeatureError(f"{self.host}: labels need Gmail's X-GM-EXT-1")
        args = [quote(utf7.encode(label)) for label in labels]
        if any(isinstance(arg, Literal) for arg in args):
            raise ValueError("a label name must be shorter than 1000 bytes")
        joined = b" ".join(arg for arg in args if isinstance(arg, bytes))
        await self._run(
            b"UID STORE", uid_set(uids), mode.encode() + b"X-GM-LABELS.SILENT", b"(" + joined + b")"
        )

    async def move_mapped(self, uids: UIDs, destination: str) -> tuple[int | None, dict[int, int]]:
        """:meth:`move`, with the destination's UIDVALIDITY from COPYUID (None without UIDPLUS)."""
        await self._ensure_caps()
        texts: list[StatusText] = []
        if self.has("MOVE"):
            result = await self._run(b"UID MOVE", uid_set(uids), mailbox_arg(destination), wants=(b"OK",))
            texts.append(result.text)
            texts += [parse_status_text(r.first[offset:]) for _, _, offset, r in result.untagged]
        elif not self.has("UIDPLUS"):
            raise UnsupportedFeatureError(
                f"{self.host}: the server has neither MOVE nor UIDPLUS, so messages cannot be moved safely"
            )
        else:
            texts.append((await self._run(b"UID COPY", uid_set(uids), mailbox_arg(destination))).text)
            await self.store(uids, ["\\Deleted"], mode="+")
            await self.expunge(uids)
        validity: int | None = None
        mapping: dict[int, int] = {}
        for text in texts:
            found = _copyuid(text)
            if found:
                mapping.update(found)
                validity = int(text.code_args.split()[0])
        return validity, mapping

    async def rename(self, old: str, new: str) -> None:
        await self._run(b"RENAME", mailbox_arg(old), mailbox_arg(new))

    async def subscribe(self, mailbox: str, *, on: bool = True) -> None:
        """SUBSCRIBE (or UNSUBSCRIBE with ``on=False``)."""
        await self._run(b"SUBSCRIBE" if on else b"UNSUBSCRIBE", mailbox_arg(mailbox))

    async def noop(self, *, timeout: float | None = None) -> None:
        """NOOP: lets the server report changes (they arrive as events)."""
        await self._run(b"NOOP", timeout=timeout)

    async def is_alive(self, *, timeout: float = 10.0) -> bool:
        """NOOP with a short deadline; False (and the connection closed) when it fails."""
        if not self.connected:
            return False
        if self._idle is not None:  # the server is talking to us in IDLE; NOOP would need DONE first
            return not self._idle.done.done() and self._proto is not None and self._proto.bye is None
        try:
            await self.noop(timeout=timeout)
        except MailportError:
            return False
        return True

    # ================================================================== IDLE and events

    async def idle_start(self) -> None:
        """Send IDLE and wait for the server's go-ahead; events then arrive as they happen."""
        await self._ensure_caps()
        if not self.has("IDLE"):
            raise UnsupportedFeatureError(f"{self.host}: the server does not support IDLE")
        if self._idle is not None:
            return
        async with self._lock:
            proto, _ = self._require_transport()
            command = self._begin(proto, frozenset())
            try:
                async with asyncio.timeout(self.command_timeout):
                    proto.write(command.tag + b" IDLE\r\n")
                    go = await command.next_continuation()
            except TimeoutError as exc:
                self._desynced()
                raise MailTimeoutError(
                    f"{self.host}: no answer to IDLE within {self.command_timeout:g} s"
                ) from exc
            except BaseException:
                self._desynced()
                raise
            if go is None:  # refused (tagged NO/BAD)
                proto.current = None
                status, rest = command.done.result()
                text = parse_status_text(rest)
                raise CommandError(f"{self.host}: IDLE refused: {text.text}", server_said=text.text)
            self._idle = command

    async def idle_wait(self, timeout: float) -> list[ServerEvent]:
        """Wait up to ``timeout`` seconds for events; [] on timeout.

        A server BYE, a dropped connection or the server ending IDLE raise at once
        (:class:`ConnectionLostError`) -- never a hang.
        """
        events = self._drain()
        if events:
            return events
        self._raise_if_lost()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        # a timer resolving the waiter, not asyncio.wait: that adds a second future, a set, a
        # done-callback and two coroutine frames to every idle connection (issue 21)
        timer = loop.call_later(timeout, _release, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        events = self._drain()
        if not events:
            self._raise_if_lost()
        return events

    async def idle_done(self) -> None:
        """End IDLE (DONE) and wait for its completion."""
        command, self._idle = self._idle, None
        if command is None:
            return
        proto, _ = self._require_transport()
        async with self._lock:
            try:
                async with asyncio.timeout(self.command_timeout):
                    if not command.done.done():
                        proto.write(b"DONE\r\n")
                    await command.done
            except TimeoutError as exc:
                self._desynced()
                raise MailTimeoutError(
                    f"{self.host}: IDLE did not end within {self.command_timeout:g} s"
                ) from exc
            except BaseException:
                self._desynced()
                raise
            finally:
                proto.current = None

    @asynccontextmanager
    async def idle(self) -> AsyncIterator[Self]:
        """``async with client.idle(): events = await client.idle_wait(60)``."""
        await self.idle_start()
        try:
            yield self
        finally:
            if self.connected:
                await self.idle_done()
            else:
                self._idle = None

    async def logout(self) -> None:
        """LOGOUT politely (best effort, short deadline), then close."""
        if self.connected:
            try:
                if self._idle is not None:
                    await self.idle_done()
                await self._run(b"LOGOUT", timeout=min(self.command_timeout, 5.0))
            except MailportError:
                pass
        self.close()


# ====================================================================== helpers


def _namespaces(value: object) -> tuple[Namespace, ...]:
    """``(("INBOX." ".") ("" "/"))`` or NIL -> namespaces (prefixes decoded from UTF-7)."""
    out: list[Namespace] = []
    for item in as_list(value):
        parts = as_list(item)
        if len(parts) < 2 or not isinstance(parts[0], bytes):
            raise ProtocolError(f"malformed NAMESPACE entry {item!r}")
        delimiter = parts[1]
        out.append(
            Namespace(utf7.decode(parts[0]), delimiter.decode() if isinstance(delimiter, bytes) else None)
        )
    return tuple(out)


def esearch_all(values: list[object]) -> list[int]:
    """The UIDs of an ESEARCH response (``(TAG "A5") UID ALL 1:3,7``, RFC 4731); [] without ALL."""
    rest = values[1:] if values and isinstance(values[0], list) else values
    for i, value in enumerate(rest):
        if isinstance(value, bytes) and value.upper() == b"ALL" and i + 1 < len(rest):
            found = rest[i + 1]
            if isinstance(found, bytes):
                return parse_sequence_set(found)
    return []


def _flatten_thread(tree: object) -> list[int]:
    """A THREAD tree (``(3 6 (4 23)(44 7 96))``) -> its UIDs in order."""
    if isinstance(tree, bytes):
        return [int(tree)] if tree.isdigit() else []
    out: list[int] = []
    for node in as_list(tree):
        out.extend(_flatten_thread(node))
    return out


def _quoted(value: str) -> bytes:
    raw = value.encode()
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _copyuid(text: StatusText) -> dict[int, int]:
    if text.code != "COPYUID":
        return {}
    parts = text.code_args.split()
    if len(parts) != 3:
        return {}
    return dict(zip(parse_sequence_set(parts[1]), parse_sequence_set(parts[2]), strict=False))


def _appenduid(text: StatusText) -> list[AppendResult]:
    parts = text.code_args.split()
    if len(parts) != 2:
        return [AppendResult(None, None)]
    validity = int(parts[0])
    return [AppendResult(validity, uid) for uid in parse_sequence_set(parts[1])]


def _list_entry(values: list[Any], response: Any) -> ListEntry:
    """A LIST/LSUB response's values (flags, delimiter, name) as a :class:`ListEntry`."""
    if len(values) < 3 or not isinstance(values[2], bytes):
        raise ProtocolError(f"malformed LIST response {response.first[:80]!r}")
    delimiter = values[1]
    return ListEntry(
        name=utf7.decode(values[2]),
        delimiter=delimiter.decode() if isinstance(delimiter, bytes) else None,
        flags=tuple(as_str(f) for f in as_list(values[0])),
    )


def _release(waiter: asyncio.Future[None]) -> None:
    """``idle_wait``'s timeout: resolve the waiter unless an event or a wake-up did."""
    if not waiter.done():
        waiter.set_result(None)


def _flag_names(values: list[object]) -> tuple[str, ...]:
    """A SELECT's FLAGS / PERMANENTFLAGS, interned: every idle connection keeps its last
    SELECT's answer, and the same dozen names need not be stored once per connection."""
    return tuple(sys.intern(as_str(f)) for f in values)
