"""An IMAP4rev1 server simulator for fleet benchmarks and tests: one asyncio process, many users.

Why not Dovecot for 10,000 watchers: Dovecot costs ~500 KiB and a process per IDLE session and
delays notifications by a hard-coded 500 ms (PERF-NOTES), so it would dominate what a fleet
benchmark measures. This server speaks exactly the subset mailport's watcher uses, with real
framing (tags, untagged responses, literals, continuations), keeps each user's INBOX as a list
of UIDs (message bytes shared or small), and records the instant it writes ``* N EXISTS`` to an
IDLE session: the simulator's own notification, the zero of a latency measurement.

Supported: CAPABILITY, ID, ENABLE, NAMESPACE, LOGIN, AUTHENTICATE PLAIN (SASL-IR or continuation),
CREATE, DELETE (folders besides INBOX, for contract tests),
LIST, LSUB, SELECT, EXAMINE, STATUS, APPEND (LITERAL+), [UID] SEARCH (ALL, UID set, sequence set,
SEEN, UNSEEN, FLAGGED, DELETED), [UID] FETCH (UID FLAGS INTERNALDATE RFC822.SIZE RFC822
RFC822.HEADER RFC822.TEXT BODY[] BODY[HEADER] BODY[TEXT], PEEK forms, ALL/FAST/FULL macros
without ENVELOPE), [UID] STORE, NOOP, CHECK, CLOSE, UNSELECT, IDLE/DONE, LOGOUT. Anything else
is ``BAD``. No expunge: a user's messages only ever grow, so a sequence number is an index.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

CAPABILITIES = b"IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS UNSELECT AUTH=PLAIN"
MAX_LINE = 64 * 1024
MAX_LITERAL = 50 * 1024 * 1024
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LITERAL_AT_END = re.compile(rb"\{(\d+)(\+?)\}\Z")
_NO_FLAGS: frozenset[str] = frozenset()


def imap_date(when: float) -> bytes:
    """An INTERNALDATE in UTC: ``"05-Dec-2026 15:00:00 +0000"``."""
    t = time.gmtime(when)
    return b'"%02d-%s-%d %02d:%02d:%02d +0000"' % (
        t.tm_mday,
        _MONTHS[t.tm_mon - 1].encode(),
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


def sample_message(user: str, uid: int, *, size: int = 600) -> bytes:
    """A small text message with a unique Message-ID (a few hundred bytes, CRLF)."""
    body = (b"Hello from the IMAP simulator.\r\n" * max(1, size // 32))[:size]
    head = (
        b"From: sim@example.test\r\nTo: %s\r\nSubject: imapsim %d\r\n"
        b"Message-ID: <imapsim.%d.%d@example.test>\r\nDate: %s\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ) % (
        user.encode(),
        uid,
        uid,
        time.time_ns(),
        time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()).encode(),
    )
    return head + body


class Message:
    """One stored message: bytes (often shared), its arrival and its flags."""

    __slots__ = ("raw", "date", "flags")

    def __init__(self, raw: bytes, date: bytes, flags: frozenset[str] = _NO_FLAGS) -> None:
        self.raw = raw
        self.date = date
        self.flags = flags


class Mailbox:
    """A folder (usually a user's INBOX): UIDs in order (sequence number = index + 1) and the
    sessions that selected it."""

    __slots__ = ("name", "uidvalidity", "uids", "messages", "next_uid", "sessions")

    def __init__(self, name: str, uidvalidity: int) -> None:
        self.name = name
        self.uidvalidity = uidvalidity
        self.uids: list[int] = []
        self.messages: dict[int, Message] = {}
        self.next_uid = 1
        self.sessions: set[Session] = set()


@dataclass
class Notification:
    """The first ``* N EXISTS`` covering a delivered message, as written to a session."""

    user: str
    uid: int
    monotonic: float
    wall: float
    idle: bool  # written to an IDLE session (else at a later command's response)


@dataclass
class Counters:
    connections: int = 0
    accepted: int = 0
    logins: int = 0
    commands: int = 0
    bad: int = 0
    delivered: int = 0


class ImapSim:
    """The simulator's state and its listening socket; ``deliver`` is the in-process control API."""

    def __init__(
        self, *, password: str | None = None, uidvalidity: int | None = None, record: bool = True
    ) -> None:
        self.password = password  # None: any password is accepted
        self.uidvalidity = uidvalidity or int(time.time()) % 2_000_000_000
        self.record = record
        self.users: dict[str, dict[str, Mailbox]] = {}  # user -> folder name -> folder
        self.sessions: set[Session] = set()
        self.notifications: list[Notification] = []
        self._notified: set[tuple[str, int]] = set()  # (user, uid) already recorded
        self.counters = Counters()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.tls_server: asyncio.Server | None = None
        self.tls_port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, backlog: int = 4096) -> ImapSim:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Session(self), host, port, backlog=backlog)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def listen_tls(
        self, context: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0, *, backlog: int = 4096
    ) -> int:
        """A second listener with implicit TLS (same users and sessions); returns its port.
        Real deployments watch over TLS, so a memory benchmark must be able to measure it."""
        loop = asyncio.get_running_loop()
        self.tls_server = await loop.create_server(
            lambda: Session(self), host, port, backlog=backlog, ssl=context, ssl_handshake_timeout=30
        )
        self.tls_port = self.tls_server.sockets[0].getsockname()[1]
        return self.tls_port

    async def stop(self) -> None:
        servers = [s for s in (self.server, self.tls_server) if s is not None]
        for server in servers:
            server.close()
        for session in list(self.sessions):
            session.bye(b"server shutting down")
        for server in servers:
            await server.wait_closed()

    def folders(self, user: str) -> dict[str, Mailbox]:
        """A user's folders (INBOX made at first use)."""
        found = self.users.get(user)
        if found is None:
            found = self.users[user] = {"INBOX": Mailbox("INBOX", self.uidvalidity)}
        return found

    def mailbox(self, user: str, folder: str = "INBOX", *, create: bool = True) -> Mailbox | None:
        name = "INBOX" if folder.upper() == "INBOX" else folder
        folders = self.folders(user)
        box = folders.get(name)
        if box is None and create:
            box = folders[name] = Mailbox(name, self.uidvalidity)
        return box

    def recreate(self, user: str, folder: str) -> None:
        """Delete and create a folder again: its messages gone, a new UIDVALIDITY."""
        old = self.mailbox(user, folder)
        assert old is not None
        for session in list(old.sessions):
            session.bye(b"mailbox deleted")
        new = Mailbox(old.name, max(b.uidvalidity for b in self.folders(user).values()) + 1)
        self.folders(user)[old.name] = new

    def deliver(
        self, user: str, raw: bytes | None = None, *, flags: Iterable[str] = (), folder: str = "INBOX"
    ) -> int:
        """Append a message to a user's folder (made if missing) and push ``* N EXISTS`` to its
        IDLE sessions; returns the new UID (notification times go to :attr:`notifications`)."""
        box = self.mailbox(user, folder)
        assert box is not None
        uid = box.next_uid
        box.next_uid += 1
        now = time.time()
        box.uids.append(uid)
        box.messages[uid] = Message(
            raw if raw is not None else sample_message(user, uid), imap_date(now), frozenset(flags)
        )
        self.counters.delivered += 1
        for session in list(box.sessions):
            if session.idle_tag is not None:
                session.push_exists()
        return uid

    def noted(self, session: Session, first_seq: int, last_seq: int, idle: bool) -> None:
        """Record the first notification of the messages ``first_seq..last_seq`` of a session's user."""
        box = session.box
        if not self.record or session.user is None or box is None or box.name != "INBOX":
            return
        mono, wall = time.monotonic(), time.time()
        for seq in range(first_seq, last_seq + 1):
            key = (session.user, box.uids[seq - 1])
            if key not in self._notified:
                self._notified.add(key)
                self.notifications.append(Notification(session.user, key[1], mono, wall, idle))

    def stats(self) -> dict[str, int]:
        """Counts for a benchmark: sessions, IDLE sessions, users with at least one IDLE session
        and users with a session that selected a folder (connected, maybe busy fetching)."""
        idle_users = {s.user for s in self.sessions if s.idle_tag is not None}
        selected_users = {s.user for s in self.sessions if s.selected}
        return {
            "sessions": len(self.sessions),
            "authenticated": sum(1 for s in self.sessions if s.user is not None),
            "idle_sessions": sum(1 for s in self.sessions if s.idle_tag is not None),
            "idle_users": len(idle_users),
            "selected_users": len(selected_users),
            "users": len(self.users),
            "accepted": self.counters.accepted,
            "logins": self.counters.logins,
            "commands": self.counters.commands,
            "bad": self.counters.bad,
            "delivered": self.counters.delivered,
            "notifications": len(self.notifications),
        }


# ---------------------------------------------------------------------------- command parsing


class Lit(bytes):
    """A literal's bytes (distinguished from an atom only where it matters: never)."""


class ParseError(ValueError):
    pass


def tokenize(parts: list[bytes | Lit]) -> list[object]:
    """Arguments of a command: atoms/strings as bytes, parenthesized lists as lists."""
    stack: list[list[object]] = [[]]
    for part in parts:
        if isinstance(part, Lit):
            stack[-1].append(bytes(part))
            continue
        i, n = 0, len(part)
        while i < n:
            c = part[i]
            if c == 0x20:
                i += 1
            elif c == 0x28:  # (
                stack.append([])
                i += 1
            elif c == 0x29:  # )
                if len(stack) == 1:
                    raise ParseError("unbalanced )")
                done = stack.pop()
                stack[-1].append(done)
                i += 1
            elif c == 0x22:  # "
                out = bytearray()
                i += 1
                while i < n and part[i] != 0x22:
                    if part[i] == 0x5C and i + 1 < n:
                        i += 1
                    out.append(part[i])
                    i += 1
                if i >= n:
                    raise ParseError("unterminated quoted string")
                stack[-1].append(bytes(out))
                i += 1
            else:
                start, depth = i, 0
                while i < n:
                    c = part[i]
                    if c == 0x5B:
                        depth += 1
                    elif c == 0x5D:
                        depth -= 1
                    elif depth == 0 and c in (0x20, 0x28, 0x29):
                        break
                    i += 1
                stack[-1].append(part[start:i])
    if len(stack) != 1:
        raise ParseError("unbalanced (")
    return stack[0]


def parse_set(text: bytes, largest: int) -> list[tuple[int, int]]:
    """A sequence/UID set as inclusive ranges; ``*`` is ``largest``."""
    ranges: list[tuple[int, int]] = []
    for piece in text.split(b","):
        lo, _, hi = piece.partition(b":")
        a = largest if lo == b"*" else int(lo)
        b = a if not hi else (largest if hi == b"*" else int(hi))
        ranges.append((min(a, b), max(a, b)))
    return ranges


def in_ranges(value: int, ranges: list[tuple[int, int]]) -> bool:
    return any(lo <= value <= hi for lo, hi in ranges)


def quoted(value: str) -> bytes:
    return b'"' + value.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


# ---------------------------------------------------------------------------- a connection


@dataclass
class _Pending:
    parts: list[bytes | Lit] = field(default_factory=list)
    literal: int = 0  # bytes of a literal still to read


class Session(asyncio.Protocol):
    """One client connection: reads command lines and literals, answers in order."""

    __slots__ = (
        "sim",
        "transport",
        "buf",
        "pending",
        "user",
        "box",
        "selected",
        "readonly",
        "known",
        "idle_tag",
        "auth_tag",
        "closed",
    )

    def __init__(self, sim: ImapSim) -> None:
        self.sim = sim
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending = _Pending()
        self.user: str | None = None
        self.box: Mailbox | None = None
        self.selected = False
        self.readonly = False
        self.known = 0  # EXISTS this session has been told
        self.idle_tag: bytes | None = None
        self.auth_tag: bytes | None = None  # AUTHENTICATE waiting for its continuation
        self.closed = False

    # -- transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.sim.sessions.add(self)
        self.sim.counters.accepted += 1
        transport.write(b"* OK [CAPABILITY " + CAPABILITIES + b"] imapsim ready\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.sim.sessions.discard(self)
        if self.box is not None:
            self.box.sessions.discard(self)
        self.idle_tag = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while not self.closed:
            p = self.pending
            if p.literal:
                if len(self.buf) < p.literal:
                    return
                p.parts.append(Lit(self.buf[: p.literal]))
                del self.buf[: p.literal]
                p.literal = 0
                continue
            end = self.buf.find(b"\n")
            if end < 0:
                if len(self.buf) > MAX_LINE:
                    self.bye(b"line too long")
                return
            line = bytes(self.buf[:end]).rstrip(b"\r")
            del self.buf[: end + 1]
            if self.auth_tag is not None and not p.parts:
                self._auth_continued(line)
                continue
            if self.idle_tag is not None and not p.parts:
                self._idle_line(line)
                continue
            m = _LITERAL_AT_END.search(line)
            if m is not None:
                size = int(m.group(1))
                if size > MAX_LITERAL:
                    self.bye(b"literal too large")
                    return
                p.parts.append(line[: m.start()])
                p.literal = size
                if not m.group(2):
                    self.write(b"+ Ready for literal data\r\n")
                if size == 0:
                    p.parts.append(Lit(b""))
                continue
            p.parts.append(line)
            self.pending = _Pending()
            self._command(p.parts)

    # -- output

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def bye(self, text: bytes) -> None:
        self.write(b"* BYE " + text + b"\r\n")
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def push_exists(self) -> None:
        """Tell this session about messages it does not know of (IDLE or before a tagged reply)."""
        assert self.box is not None
        count = len(self.box.uids)
        if count > self.known and self.selected:
            before, self.known = self.known, count
            self.write(b"* %d EXISTS\r\n" % count)
            self.sim.noted(self, before + 1, count, self.idle_tag is not None)

    # -- dispatch

    def _command(self, parts: list[bytes | Lit]) -> None:
        self.sim.counters.commands += 1
        first = parts[0] if parts else b""
        tag, _, rest = bytes(first).partition(b" ")
        if not tag or isinstance(first, Lit):
            self.write(b"* BAD missing tag\r\n")
            return
        name, _, args_text = rest.partition(b" ")
        name = name.upper()
        uid = False
        if name == b"UID":
            uid = True
            name, _, args_text = args_text.partition(b" ")
            name = name.upper()
        try:
            args = tokenize([args_text, *parts[1:]])
        except (ParseError, ValueError) as exc:
            return self._bad(tag, str(exc).encode())
        handler = _HANDLERS.get(name)
        if handler is None or (uid and name not in (b"FETCH", b"SEARCH", b"STORE")):
            return self._bad(tag, b"unknown command")
        state_needed = _NEEDS.get(name, 0)
        if state_needed >= 1 and self.user is None:
            return self._bad(tag, b"not authenticated")
        if state_needed >= 2 and not self.selected:
            return self._bad(tag, b"no mailbox selected")
        try:
            handler(self, tag, args, uid)
        except (ParseError, ValueError, IndexError, TypeError) as exc:
            self._bad(tag, b"bad arguments: " + str(exc).encode()[:200])

    def _bad(self, tag: bytes, text: bytes) -> None:
        self.sim.counters.bad += 1
        self.write(tag + b" BAD " + text + b"\r\n")

    def _ok(self, tag: bytes, text: bytes = b"done", *, notify: bool = True) -> None:
        if notify and self.selected:
            self.push_exists()
        self.write(tag + b" OK " + text + b"\r\n")

    # -- any state

    def cmd_capability(self, tag: bytes, args: list[object], uid: bool) -> None:
        self.write(b"* CAPABILITY " + CAPABILITIES + b"\r\n")
        self._ok(tag, b"CAPABILITY completed")

    def cmd_noop(self, tag: bytes, args: list[object], uid: bool) -> None:
        self._ok(tag, b"NOOP completed")

    def cmd_logout(self, tag: bytes, args: list[object], uid: bool) -> None:
        self.write(b"* BYE logging out\r\n")
        self.write(tag + b" OK LOGOUT completed\r\n")
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def cmd_id(self, tag: bytes, args: list[object], uid: bool) -> None:
        self.write(b'* ID ("name" "imapsim" "version" "1")\r\n')
        self._ok(tag, b"ID completed")

    def cmd_enable(self, tag: bytes, args: list[object], uid: bool) -> None:
        self.write(b"* ENABLED\r\n")  # nothing this server offers needs enabling
        self._ok(tag, b"ENABLE completed")

    # -- authentication

    def _login(self, tag: bytes, user: str, password: str) -> None:
        if self.user is not None:
            return self._bad(tag, b"already authenticated")
        if not user or (self.sim.password is not None and password != self.sim.password):
            self.write(tag + b" NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
            return
        self.user = user
        self.sim.counters.logins += 1
        self.write(tag + b" OK [CAPABILITY " + CAPABILITIES + b"] Logged in\r\n")

    def cmd_login(self, tag: bytes, args: list[object], uid: bool) -> None:
        if len(args) != 2 or not all(isinstance(a, bytes) for a in args):
            return self._bad(tag, b"LOGIN needs user and password")
        user, password = args
        assert isinstance(user, bytes) and isinstance(password, bytes)
        self._login(tag, user.decode("utf-8", "replace"), password.decode("utf-8", "replace"))

    def cmd_authenticate(self, tag: bytes, args: list[object], uid: bool) -> None:
        if not args or not isinstance(args[0], bytes) or args[0].upper() != b"PLAIN":
            self.write(tag + b" NO [CANNOT] unsupported mechanism\r\n")
            return
        if len(args) > 1 and isinstance(args[1], bytes):
            return self._plain(tag, args[1])
        self.auth_tag = tag
        self.write(b"+ \r\n")

    def _auth_continued(self, line: bytes) -> None:
        tag, self.auth_tag = self.auth_tag, None
        assert tag is not None
        if line == b"*":
            self._bad(tag, b"AUTHENTICATE cancelled")
            return
        self._plain(tag, line)

    def _plain(self, tag: bytes, encoded: bytes) -> None:
        try:
            _authz, user, password = base64.b64decode(encoded, validate=True).split(b"\0")
        except ValueError:
            self._bad(tag, b"invalid SASL PLAIN response")
            return
        self._login(tag, user.decode("utf-8", "replace"), password.decode("utf-8", "replace"))

    # -- authenticated

    def cmd_namespace(self, tag: bytes, args: list[object], uid: bool) -> None:
        self.write(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
        self._ok(tag, b"NAMESPACE completed")

    def cmd_list(self, tag: bytes, args: list[object], uid: bool) -> None:
        assert self.user is not None
        pattern = args[1] if len(args) > 1 and isinstance(args[1], bytes) else b"*"
        if pattern == b"":
            self.write(b'* LIST (\\Noselect) "/" ""\r\n')
        else:
            wanted = re.compile(
                re.escape(pattern.decode()).replace(r"\*", ".*").replace("%", "[^/]*") + r"\Z"
            )
            for name in self.sim.folders(self.user):
                if wanted.match(name) or (name == "INBOX" and pattern.upper() == b"INBOX"):
                    self.write(b'* LIST (\\HasNoChildren) "/" ' + quoted(name) + b"\r\n")
        self._ok(tag, b"LIST completed")

    def cmd_create(self, tag: bytes, args: list[object], uid: bool) -> None:
        assert self.user is not None
        if len(args) != 1 or not isinstance(args[0], bytes):
            return self._bad(tag, b"CREATE needs a mailbox name")
        name = args[0].decode()
        if self.sim.mailbox(self.user, name, create=False) is not None:
            self.write(tag + b" NO [ALREADYEXISTS] Mailbox already exists\r\n")
            return
        self.sim.mailbox(self.user, name)
        self._ok(tag, b"CREATE completed")

    def cmd_delete(self, tag: bytes, args: list[object], uid: bool) -> None:
        assert self.user is not None
        if len(args) != 1 or not isinstance(args[0], bytes) or args[0].upper() == b"INBOX":
            self.write(tag + b" NO cannot delete that\r\n")
            return
        if self.sim.folders(self.user).pop(args[0].decode(), None) is None:
            self.write(tag + b" NO [NONEXISTENT] Mailbox doesn't exist\r\n")
            return
        self._ok(tag, b"DELETE completed")

    cmd_lsub = cmd_list

    def _folder(self, arg: object) -> Mailbox | None:
        assert self.user is not None
        if not isinstance(arg, bytes):
            return None
        return self.sim.mailbox(self.user, arg.decode("utf-8", "replace"), create=False)

    def cmd_select(self, tag: bytes, args: list[object], uid: bool, *, readonly: bool = False) -> None:
        if self.box is not None:
            self.box.sessions.discard(self)
        self.selected = False
        box = self._folder(args[0]) if args else None
        if box is None:
            self.write(tag + b" NO [NONEXISTENT] Mailbox doesn't exist\r\n")
            return
        self.box = box
        box.sessions.add(self)
        self.known = len(box.uids)
        self.write(
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n"
            b"* %d EXISTS\r\n* 0 RECENT\r\n"
            b"* OK [UIDVALIDITY %d] UIDs valid\r\n* OK [UIDNEXT %d] Predicted next UID\r\n"
            % (self.known, box.uidvalidity, box.next_uid)
        )
        self.sim.noted(self, 1, self.known, False)
        self.selected, self.readonly = True, readonly
        mode = b"[READ-ONLY]" if readonly else b"[READ-WRITE]"
        self.write(tag + b" OK " + mode + (b" EXAMINE" if readonly else b" SELECT") + b" completed\r\n")

    def cmd_examine(self, tag: bytes, args: list[object], uid: bool) -> None:
        self.cmd_select(tag, args, uid, readonly=True)

    def cmd_status(self, tag: bytes, args: list[object], uid: bool) -> None:
        if len(args) != 2 or not isinstance(args[1], list):
            return self._bad(tag, b"STATUS needs a mailbox and items")
        box = self._folder(args[0])
        if box is None:
            self.write(tag + b" NO [NONEXISTENT] Mailbox doesn't exist\r\n")
            return
        values = {
            b"MESSAGES": len(box.uids),
            b"RECENT": 0,
            b"UIDNEXT": box.next_uid,
            b"UIDVALIDITY": box.uidvalidity,
            b"UNSEEN": sum(1 for m in box.messages.values() if "\\Seen" not in m.flags),
        }
        out = []
        for item in args[1]:
            key = bytes(item).upper()  # type: ignore[arg-type]
            if key not in values:
                return self._bad(tag, b"unknown STATUS item")
            out.append(key + b" %d" % values[key])
        self.write(b"* STATUS " + quoted(box.name) + b" (" + b" ".join(out) + b")\r\n")
        self._ok(tag, b"STATUS completed")

    def cmd_append(self, tag: bytes, args: list[object], uid: bool) -> None:
        box = self._folder(args[0]) if args else None
        if len(args) < 2 or box is None:
            self.write(tag + b" NO [TRYCREATE] Mailbox doesn't exist\r\n")
            return
        flags: list[str] = []
        if isinstance(args[1], list):
            flags = [bytes(f).decode() for f in args[1]]  # type: ignore[arg-type]
        raw = args[-1]
        if not isinstance(raw, bytes):
            return self._bad(tag, b"APPEND needs a message literal")
        assert self.user is not None
        new = self.sim.deliver(self.user, raw, flags=[f for f in flags if f != "\\Recent"], folder=box.name)
        self._ok(tag, b"[APPENDUID %d %d] APPEND completed" % (box.uidvalidity, new))

    # -- selected

    def cmd_close(self, tag: bytes, args: list[object], uid: bool) -> None:
        if self.box is not None:
            self.box.sessions.discard(self)
        self.selected = False
        self._ok(tag, b"CLOSE completed", notify=False)

    cmd_unselect = cmd_close

    def cmd_check(self, tag: bytes, args: list[object], uid: bool) -> None:
        self._ok(tag, b"CHECK completed")

    def cmd_idle(self, tag: bytes, args: list[object], uid: bool) -> None:
        self.idle_tag = tag
        self.write(b"+ idling\r\n")
        if self.selected:
            self.push_exists()

    def _idle_line(self, line: bytes) -> None:
        tag, self.idle_tag = self.idle_tag, None
        assert tag is not None
        if line.upper() == b"DONE":
            self._ok(tag, b"IDLE terminated")
        else:
            self._bad(tag, b"expected DONE")

    def _numbers(self, text: object, uid: bool) -> list[int]:
        """Sequence numbers (1-based) of the set ``text`` (UIDs when ``uid``)."""
        assert self.box is not None and isinstance(text, bytes)
        uids = self.box.uids[: self.known] if self.known < len(self.box.uids) else self.box.uids
        if not uids:
            return []
        if uid:
            ranges = parse_set(text, uids[-1])
            return [i + 1 for i, u in enumerate(uids) if in_ranges(u, ranges)]
        ranges = parse_set(text, len(uids))
        return [n for n in range(1, len(uids) + 1) if in_ranges(n, ranges)]

    def cmd_search(self, tag: bytes, args: list[object], uid: bool) -> None:
        assert self.box is not None
        if uid:  # like Dovecot: new mail is announced first, then included
            self.push_exists()
        if args and isinstance(args[0], bytes) and args[0].upper() == b"CHARSET":
            args = args[2:]
        numbers = set(range(1, min(self.known, len(self.box.uids)) + 1))
        i = 0
        while i < len(args):
            key = args[i]
            if not isinstance(key, bytes):
                raise ParseError("nested search keys are not supported")
            upper = key.upper()
            if upper == b"ALL":
                pass
            elif upper == b"UID":
                i += 1
                numbers &= set(self._numbers(args[i], True))
            elif upper in (b"SEEN", b"UNSEEN", b"FLAGGED", b"UNFLAGGED", b"DELETED", b"UNDELETED"):
                flag = "\\" + upper.decode().removeprefix("UN").capitalize()
                want = not upper.startswith(b"UN")
                numbers = {
                    n for n in numbers if (flag in self.box.messages[self.box.uids[n - 1]].flags) == want
                }
            elif upper[:1].isdigit() or upper[:1] == b"*":
                numbers &= set(self._numbers(key, False))
            else:
                return self._bad(tag, b"unsupported search key")
            i += 1
        found = sorted(numbers)
        values = [self.box.uids[n - 1] for n in found] if uid else found
        self.write(b"* SEARCH" + b"".join(b" %d" % v for v in values) + b"\r\n")
        self._ok(tag, b"SEARCH completed", notify=False)

    def cmd_fetch(self, tag: bytes, args: list[object], uid: bool) -> None:
        assert self.box is not None
        if len(args) < 2:
            return self._bad(tag, b"FETCH needs a set and items")
        if uid:
            self.push_exists()
        items = args[1] if isinstance(args[1], list) else [args[1]]
        names: list[bytes] = []
        for item in items:
            if not isinstance(item, bytes):
                return self._bad(tag, b"unsupported FETCH item")
            upper = item.upper()
            names += _MACROS.get(upper, [upper])
        if uid and b"UID" not in names:
            names.insert(0, b"UID")
        for name in names:
            if name not in _FETCHABLE:
                return self._bad(tag, b"unsupported FETCH item " + name[:40])
        out = bytearray()
        for number in self._numbers(args[0], uid):
            message_uid = self.box.uids[number - 1]
            message = self.box.messages[message_uid]
            sets_seen = not self.readonly and any(n in _SETS_SEEN for n in names)
            if sets_seen and "\\Seen" not in message.flags:
                message.flags = message.flags | {"\\Seen"}
            pieces = []
            for name in names:
                pieces.append(self._item(name, message_uid, message))
            if sets_seen and b"FLAGS" not in names:
                pieces.append(b"FLAGS (" + " ".join(sorted(message.flags)).encode() + b")")
            out += b"* %d FETCH (" % number + b" ".join(pieces) + b")\r\n"
            if len(out) > 256 * 1024:
                self.write(bytes(out))
                out.clear()
        self.write(bytes(out))
        self._ok(tag, b"FETCH completed", notify=False)

    @staticmethod
    def _item(name: bytes, message_uid: int, message: Message) -> bytes:
        if name == b"UID":
            return b"UID %d" % message_uid
        if name == b"FLAGS":
            return b"FLAGS (" + " ".join(sorted(message.flags)).encode() + b")"
        if name == b"INTERNALDATE":
            return b"INTERNALDATE " + message.date
        if name == b"RFC822.SIZE":
            return b"RFC822.SIZE %d" % len(message.raw)
        raw = message.raw
        split = raw.find(b"\r\n\r\n")
        header, text = (raw[: split + 4], raw[split + 4 :]) if split >= 0 else (raw, b"")
        label, data = _BODIES[name]
        chosen = raw if data == "all" else header if data == "header" else text
        return label + b" {%d}\r\n" % len(chosen) + chosen

    def cmd_store(self, tag: bytes, args: list[object], uid: bool) -> None:
        assert self.box is not None
        if len(args) != 3 or not isinstance(args[1], bytes):
            return self._bad(tag, b"STORE needs a set, an item and flags")
        if self.readonly:
            self.write(tag + b" NO read-only mailbox\r\n")
            return
        action = args[1].upper()
        silent = action.endswith(b".SILENT")
        action = action.removesuffix(b".SILENT")
        values = args[2] if isinstance(args[2], list) else [args[2]]
        flags = frozenset(bytes(v).decode() for v in values)  # type: ignore[arg-type]
        out = bytearray()
        for number in self._numbers(args[0], uid):
            message_uid = self.box.uids[number - 1]
            message = self.box.messages[message_uid]
            if action == b"+FLAGS":
                message.flags = message.flags | flags
            elif action == b"-FLAGS":
                message.flags = message.flags - flags
            elif action == b"FLAGS":
                message.flags = flags
            else:
                return self._bad(tag, b"unknown STORE item")
            if not silent:
                shown = b" ".join(f.encode() for f in sorted(message.flags))
                extra = b"UID %d " % message_uid if uid else b""
                out += b"* %d FETCH (%sFLAGS (%s))\r\n" % (number, extra, shown)
        self.write(bytes(out))
        self._ok(tag, b"STORE completed", notify=False)


_BODIES: dict[bytes, tuple[bytes, str]] = {
    b"BODY[]": (b"BODY[]", "all"),
    b"BODY.PEEK[]": (b"BODY[]", "all"),
    b"RFC822": (b"RFC822", "all"),
    b"BODY[HEADER]": (b"BODY[HEADER]", "header"),
    b"BODY.PEEK[HEADER]": (b"BODY[HEADER]", "header"),
    b"RFC822.HEADER": (b"RFC822.HEADER", "header"),
    b"BODY[TEXT]": (b"BODY[TEXT]", "text"),
    b"BODY.PEEK[TEXT]": (b"BODY[TEXT]", "text"),
    b"RFC822.TEXT": (b"RFC822.TEXT", "text"),
}
_SETS_SEEN = {b"BODY[]", b"RFC822", b"BODY[TEXT]", b"RFC822.TEXT", b"BODY[HEADER]"}
_FETCHABLE = {b"UID", b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", *_BODIES}
_MACROS = {
    b"ALL": [b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"],
    b"FAST": [b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"],
    b"FULL": [b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"],
}
_HANDLERS = {
    name.removeprefix("cmd_").upper().encode(): getattr(Session, name)
    for name in dir(Session)
    if name.startswith("cmd_")
}
# 0: any state, 1: authenticated, 2: selected
_NEEDS = {
    b"NAMESPACE": 1,
    b"LIST": 1,
    b"CREATE": 1,
    b"DELETE": 1,
    b"LSUB": 1,
    b"SELECT": 1,
    b"EXAMINE": 1,
    b"STATUS": 1,
    b"APPEND": 1,
    b"ENABLE": 1,
    b"IDLE": 1,
    b"CLOSE": 2,
    b"UNSELECT": 2,
    b"CHECK": 2,
    b"SEARCH": 2,
    b"FETCH": 2,
    b"STORE": 2,
}
