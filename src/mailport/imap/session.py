"""One IMAP session: connection steps, TLS, authentication, the command machinery, events.

Why our own client at all: no licence-compatible, maintained asyncio IMAP client exists
(aioimaplib is GPL-3.0, has no STARTTLS nor general AUTHENTICATE, does not parse FETCH and
can hang in IDLE on BYE; imapclient is synchronous). The parts are:

* :mod:`~mailport.imap.parser` -- pure framing and parsing (tested on bytes);
* :mod:`~mailport.imap.arguments` -- pure encoding of command arguments;
* :mod:`~mailport.imap.protocol` -- the one ``asyncio.Protocol`` doing I/O;
* :mod:`~mailport.net.tls_layer` -- TLS over the plain connection (no read buffer per
  connection); :mod:`~mailport.imap.transport` -- keepalive, TLS contexts, certificate facts;
* this module -- policy: the connection steps, a deadline on every command, auth rules,
  unsolicited events;
* :mod:`~mailport.imap.client` -- the IMAP commands, their result objects, and IDLE.

Rules enforced here:

* Plain (unencrypted) connections only with ``allow_plaintext=True``; credentials are never
  sent unencrypted unless ``allow_plaintext_auth=True`` (:class:`InsecureAuthRefusedError`);
  plaintext received after STARTTLS's OK (response injection) is a protocol error.
* Every command has a deadline (``command_timeout`` or the call's ``timeout``); when it
  passes, or the caller cancels, the connection is closed -- a half-read response would
  desync every later command -- and :class:`MailTimeoutError` is raised.
* Foreign exceptions (``OSError``, ``ssl.*``, ``TimeoutError``) are translated once, here,
  into the mailport error tree with the cause chained; the server's own words are kept in
  ``server_said``.
* Unsolicited responses (EXISTS, EXPUNGE, FETCH, VANISHED, BYE, ``[ALERT]``) become
  :class:`ServerEvent` s: given to ``on_event`` if set, else queued (bounded) for
  ``events()`` / ``idle_wait()``. An idle connection holds no task.

The connection is step-wise so a caller can time each step (connection tests)::

    client = ImapClient("imap.example.com", 993)
    await client.connect_tcp()
    tls = await client.tls_handshake()      # implicit TLS only; STARTTLS: client.starttls()
    greeting = await client.read_greeting()
    caps = await client.capability()
    await client.authenticate(PasswordAuth("me@example.com", Secret("...")))
    info = await client.select("INBOX")

or all at once: ``client = await ImapClient.open(host, port, auth=...)``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self, cast

from mailport import sasl
from mailport.crypto.secret import Secret
from mailport.errors import (
    AuthenticationError,
    AuthMechanismUnsupportedError,
    AuthUnavailableError,
    CommandError,
    ConnectError,
    ConnectionLostError,
    InsecureAuthRefusedError,
    InvalidCredentialsError,
    MailboxAccessDeniedError,
    MailportError,
    MailTimeoutError,
    ProtocolError,
    ProviderError,
    TLSError,
)
from mailport.imap.arguments import Arg, Literal, quote
from mailport.imap.models import (
    EventKind,
    FetchedMessage,
    Greeting,
    ServerEvent,
    TLSInfo,
)
from mailport.imap.parser import (
    Response,
    StatusText,
    parse_fetch,
    parse_sequence_set,
    parse_status_text,
    untagged_head,
)
from mailport.imap.protocol import ImapProtocol, PendingCommand
from mailport.imap.transport import (
    DEFAULT_BULK_READ_BUFFER,
    DEFAULT_TLS_READ_BUFFER,
    enable_keepalive,
    shared_context,
    tls_info,
    tls_layer,
)
from mailport.net.connect import open_socket
from mailport.net.guard import HostGuard
from mailport.net.signin import signed_in
from mailport.net.tls_layer import TLSLayer
from mailport.net.trust import certificate_error
from mailport.servers import DEFAULT_PORTS, Security

log = logging.getLogger(__name__)

DEFAULT_MAX_LITERAL = 50 * 1024 * 1024
MAX_QUEUED_EVENTS = 10_000

_EMPTY: frozenset[str] = frozenset()
_CAPS_CACHE: dict[tuple[bytes, frozenset[str]], frozenset[str]] = {}


class CommandResult:
    """The tagged completion plus the untagged responses the command collected."""

    __slots__ = ("status", "text", "untagged")

    def __init__(
        self, status: bytes, text: StatusText, untagged: list[tuple[int | None, bytes, int, Response]]
    ):
        self.status = status
        self.text = text
        self.untagged = untagged


class ImapSession:
    """One IMAP connection's session state; :class:`~mailport.imap.client.ImapClient` adds the commands."""

    __slots__ = (
        "host",
        "port",
        "security",
        "server_hostname",
        "allow_plaintext",
        "allow_plaintext_auth",
        "connect_timeout",
        "command_timeout",
        "max_literal_size",
        "tls_read_buffer",
        "bulk_read_buffer",
        "on_event",
        "local_addr",
        "guard",
        "_ssl_context",
        "_ignore",
        "_proto",
        "_transport",
        "_caps",
        "_tag",
        "_lock",
        "_events",
        "_waiter",
        "_idle",
        "_selected",
        "_enabled",
        "_tls",
        "_greeting",
        "_authenticated",
    )

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        security: Security | str = Security.SSL,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        verify: bool = True,
        server_hostname: str | None = None,
        allow_plaintext: bool = False,
        allow_plaintext_auth: bool = False,
        connect_timeout: float = 15.0,
        command_timeout: float = 60.0,
        max_literal_size: int = DEFAULT_MAX_LITERAL,
        tls_read_buffer: int = DEFAULT_TLS_READ_BUFFER,
        bulk_read_buffer: int = DEFAULT_BULK_READ_BUFFER,
        ignore_capabilities: Iterable[str] = (),
        on_event: Callable[[ServerEvent], None] | None = None,
        local_addr: tuple[str, int] | None = None,
        guard: HostGuard | None = None,
    ) -> None:
        """``guard``: vets the host at every connection (:mod:`mailport.net.connect`); the
        service passes its SSRF guard, a library caller gets the operator's (any address, still
        resolved once and connected to exactly)."""
        self.host = host
        self.security = Security.parse(security)
        self.port = port or DEFAULT_PORTS["imap"][self.security]
        self.server_hostname = server_hostname or host
        if self.security is Security.NONE and not allow_plaintext:
            raise InsecureAuthRefusedError(
                f"{host}:{self.port}: an unencrypted IMAP connection needs allow_plaintext=True"
            )
        self.allow_plaintext = allow_plaintext
        self.allow_plaintext_auth = allow_plaintext_auth
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.max_literal_size = max_literal_size
        self.tls_read_buffer = tls_read_buffer
        self.bulk_read_buffer = bulk_read_buffer
        self.on_event = on_event
        self.local_addr = local_addr
        self.guard = guard or HostGuard.for_operator()
        if not verify and ssl_context is None and self.security is not Security.NONE:
            log.warning("%s:%s: TLS certificate verification is DISABLED (skip-verify)", host, self.port)
        self._ssl_context: ssl.SSLContext | None = ssl_context
        if ssl_context is None and self.security is not Security.NONE:
            self._ssl_context = shared_context(ca_file, verify)
        self._ignore = frozenset(c.upper() for c in ignore_capabilities) or _EMPTY
        self._proto: ImapProtocol | None = None
        self._transport: asyncio.Transport | None = None
        self._caps: frozenset[str] | None = None
        self._tag = 0
        self._lock = asyncio.Lock()
        self._events: collections.deque[ServerEvent] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._idle: PendingCommand | None = None
        self._selected: str | None = None
        self._enabled: frozenset[str] = _EMPTY
        self._tls = False  # TLS established (the details are read on demand: memory)
        self._greeting: Greeting | None = None
        self._authenticated = False

    def __repr__(self) -> str:
        return f"ImapClient({self.host!r}, {self.port}, security={self.security.value!r})"

    # ================================================================== connection steps

    @classmethod
    async def open(
        cls, host: str, port: int | None = None, *, auth: sasl.Credentials | None = None, **options: Any
    ) -> Self:
        """Connect (TCP, TLS/STARTTLS, greeting, capabilities) and authenticate in one call."""
        return await signed_in(cls(host, port, **options), auth)

    async def connect(self) -> Greeting:
        """All pre-authentication steps for the configured security; returns the greeting."""
        await self.connect_tcp()
        if self.security is Security.SSL:
            await self.tls_handshake()
        greeting = await self.read_greeting()
        if self.security is Security.STARTTLS:
            await self.starttls()
        elif self._caps is None:
            await self.capability()
        return greeting

    async def connect_tcp(self, *, sock: socket.socket | None = None) -> None:
        """Step 1: the TCP connection (``connect_timeout``), with keepalive.

        The host is vetted by :attr:`guard` and the address it checked is the one connected to
        (:func:`mailport.net.connect.open_socket`); a refused host raises
        :class:`~mailport.errors.HostNotAllowedError` before anything is sent. ``sock``: an
        already connected socket to use instead (e.g. from
        :func:`mailport.net.guard.connect_vetted`); TLS still verifies the certificate against
        ``server_hostname``.
        """
        loop = asyncio.get_running_loop()
        where = f"{self.host}:{self.port}"
        try:
            async with asyncio.timeout(self.connect_timeout):
                if sock is None:
                    _vetted, sock = await open_socket(
                        self.guard,
                        self.host,
                        self.port,
                        timeout=self.connect_timeout,
                        field="imap.host",
                        local_addr=self.local_addr,
                    )
                plain, layer = await loop.create_connection(self._make_layer, sock=sock)
        except MailportError:  # host_not_allowed, host_not_found, connection_refused …
            if sock is not None:
                sock.close()
            raise
        except TimeoutError as exc:
            raise MailTimeoutError(f"{where}: no TCP connection within {self.connect_timeout:g} s") from exc
        except OSError as exc:
            raise ConnectError(f"{where}: {exc.strerror or exc}") from exc
        enable_keepalive(plain)
        self._transport = layer
        self._proto = cast(ImapProtocol, layer.app)

    def _make_layer(self) -> TLSLayer:
        """The connection's protocol: plaintext until :meth:`tls_handshake`, TLS after."""
        proto = ImapProtocol(
            max_literal=self.max_literal_size, on_untagged=self._untagged, on_lost=self._lost
        )
        return TLSLayer(proto, idle_slice=self.tls_read_buffer)

    async def tls_handshake(self) -> TLSInfo:
        """Step 2 (implicit TLS): the TLS handshake; returns version, cipher and certificate facts."""
        if self._ssl_context is None:
            raise TLSError("no TLS context (plain connection)")
        _, transport = self._require_transport()
        layer = tls_layer(transport)
        if layer is None:
            raise TLSError("not a connection made by connect_tcp")
        where = f"{self.host}:{self.port}"
        try:
            await layer.start_tls(
                self._ssl_context, server_hostname=self.server_hostname, timeout=self.connect_timeout
            )
        except TimeoutError as exc:
            self.close()
            raise MailTimeoutError(
                f"{where}: TLS handshake did not finish in {self.connect_timeout:g} s"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise certificate_error(exc, where) from exc
        except (ssl.SSLError, ConnectionError) as exc:
            self.close()
            raise TLSError(f"{where}: TLS handshake failed: {getattr(exc, 'reason', None) or exc}") from exc
        except OSError as exc:
            self.close()
            raise TLSError(f"{where}: TLS handshake failed: {exc}") from exc
        self._tls = True
        return tls_info(layer)

    async def read_greeting(self) -> Greeting:
        """Step 3: the server's greeting (``* OK``/``* PREAUTH``; ``* BYE`` raises)."""
        proto, _ = self._require_transport()
        where = f"{self.host}:{self.port}"
        try:
            async with asyncio.timeout(self.connect_timeout):
                response = await proto.greeting
        except TimeoutError as exc:
            self.close()
            raise MailTimeoutError(
                f"{where}: the server accepted the connection but sent no greeting "
                f"within {self.connect_timeout:g} s",
                hint="This port may not be IMAP, or it expects TLS (try the other security mode).",
            ) from exc
        _, kind, offset = _head(response)
        text = parse_status_text(response.first[offset:])
        if kind == b"BYE":
            self.close()
            raise ConnectError(
                f"{where}: the server refused the connection: {text.text}",
                server_said=text.said(),
                status="BYE",
            )
        if kind not in (b"OK", b"PREAUTH"):
            self.close()
            raise ProtocolError(f"{where}: unexpected greeting {response.first[:80]!r}")
        caps = self._caps_from_code(text)
        self._authenticated = kind == b"PREAUTH"
        self._greeting = Greeting(kind.decode(), text.text, caps)
        return self._greeting

    async def starttls(self) -> TLSInfo:
        """Upgrade a plain connection with STARTTLS; capabilities are re-read afterwards."""
        if self._caps is None:
            await self.capability()
        if "STARTTLS" not in self.capabilities:
            self.close()
            raise TLSError(
                f"{self.host}:{self.port}: the server does not offer STARTTLS",
                hint="Use implicit TLS (usually port 993) or check the port.",
            )
        await self._run(b"STARTTLS", seal=True)
        info = await self.tls_handshake()
        if self._proto is not None:
            self._proto.sealed = False
        self._caps = None
        await self.capability()
        return info

    # ================================================================== state

    @property
    def capabilities(self) -> frozenset[str]:
        return self._caps or frozenset()

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    @property
    def enabled(self) -> frozenset[str]:
        """What ENABLE switched on in this session (RFC 5161), e.g. ``QRESYNC``."""
        return self._enabled

    @property
    def tls(self) -> TLSInfo | None:
        """Version, cipher and the server certificate's facts (None when not encrypted)."""
        if not self._tls or self._transport is None:
            return None
        return tls_info(self._transport)

    @property
    def greeting(self) -> Greeting | None:
        return self._greeting

    @property
    def encrypted(self) -> bool:
        return self._tls

    @property
    def selected(self) -> str | None:
        return self._selected

    @property
    def connected(self) -> bool:
        return self._proto is not None and self._proto.error is None

    def close(self) -> None:
        """Drop the connection at once (no LOGOUT)."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()
        if self._proto is not None and self._proto.error is None:
            self._proto.fail(ConnectionLostError("the connection was closed by mailport"))

    # ================================================================== authentication

    async def authenticate(self, auth: sasl.Credentials) -> None:
        """Log in with a password (LOGIN or AUTHENTICATE PLAIN) or OAuth2 (XOAUTH2/OAUTHBEARER)."""
        if self._caps is None:
            await self.capability()
        if not self.encrypted and not self.allow_plaintext_auth:
            self.close()
            raise InsecureAuthRefusedError(
                f"{self.host}:{self.port}: refusing to send credentials over an unencrypted connection"
            )
        if isinstance(auth, sasl.PasswordAuth):
            if self.has("LOGINDISABLED"):
                raise AuthenticationError(
                    f"{self.host}:{self.port}: the server disables password login here (LOGINDISABLED)",
                    hint="Use STARTTLS or implicit TLS; the server only accepts passwords over TLS.",
                )
            mechanism = auth.mechanism
            if mechanism == "auto":
                mechanism = "PLAIN" if self.has("AUTH=PLAIN") else "LOGIN"
            if mechanism == "LOGIN":
                await self.login(auth.username, auth.password)
            else:
                await self._sasl("PLAIN", sasl.plain(auth.username, auth.password.reveal()))
        else:
            token = await auth.access_token()
            if auth.mechanism == "XOAUTH2":
                payload = sasl.xoauth2(auth.username, token.reveal())
            else:
                payload = sasl.oauthbearer(
                    auth.username, token.reveal(), host=self.server_hostname, port=self.port
                )
            await self._sasl(auth.mechanism, payload)

    async def login(self, username: str, password: Secret) -> None:
        """The LOGIN command (password as a quoted string or literal; never logged)."""
        if not self.encrypted and not self.allow_plaintext_auth:
            raise InsecureAuthRefusedError(
                f"{self.host}:{self.port}: refusing to send a password over an unencrypted connection"
            )
        try:
            result = await self._run(b"LOGIN", quote(username), quote(password.reveal()))
        except CommandError as exc:
            raise password_refused(f"{self.host}:{self.port}: login failed: {exc.server_said}", exc) from None
        self._after_auth(result)

    async def _sasl(self, mechanism: str, payload: bytes) -> None:
        oauth_error: dict[str, Any] | None = None
        encoded = sasl.b64(payload) or b"="
        initial = self.has("SASL-IR")

        async def converse(command: PendingCommand) -> None:
            nonlocal oauth_error
            proto, _ = self._require_transport()
            sent = initial
            while True:
                challenge = await command.next_continuation()
                if challenge is None:
                    return
                if not sent:
                    proto.write(encoded + b"\r\n")
                    sent = True
                    continue
                # A challenge after our response is an error report (OAuth: base64 JSON);
                # answer with the empty response (OAUTHBEARER: a single ^A) to get the NO.
                oauth_error = sasl.decode_oauth_error(challenge) or oauth_error
                proto.write((b"AQ==" if mechanism == "OAUTHBEARER" else b"") + b"\r\n")

        args: list[Arg] = [b"AUTHENTICATE", mechanism.encode()]
        if initial:
            args.append(encoded)
        try:
            result = await self._run(*args, converse=converse)
        except CommandError as exc:
            detail = sasl.describe_oauth_error(oauth_error)
            said = exc.server_said or ""
            if mechanism in ("PLAIN", "LOGIN"):
                raise password_refused(
                    f"{self.host}:{self.port}: {mechanism} authentication failed: {said}",
                    exc,
                    mechanism=mechanism,
                ) from None
            raise AuthenticationError(
                f"{self.host}:{self.port}: {mechanism} authentication failed: {said}"
                + (f" ({detail})" if detail else ""),
                server_said=said,
                oauth_error=oauth_error,
                mechanism=mechanism,
                status=exc.details.get("status"),
            ) from None
        self._after_auth(result)

    def _after_auth(self, result: CommandResult) -> None:
        self._authenticated = True
        if result.text.code == "CAPABILITY":
            self._caps = self._parse_caps(result.text.code_args)
        else:
            self._caps = None  # re-read lazily: capabilities change after login

    # ================================================================== commands

    async def capability(self) -> frozenset[str]:
        result = await self._run(b"CAPABILITY", wants=(b"CAPABILITY",))
        for _, _, offset, response in result.untagged:
            self._caps = self._parse_caps(response.first[offset:])
        if self._caps is None:
            raise ProtocolError(f"{self.host}:{self.port}: CAPABILITY returned no capabilities")
        return self._caps

    async def _ensure_caps(self) -> frozenset[str]:
        return self._caps if self._caps is not None else await self.capability()

    def events(self) -> list[ServerEvent]:
        """Queued unsolicited events (when no ``on_event`` callback is set), oldest first."""
        return self._drain()

    def _drain(self) -> list[ServerEvent]:
        if not self._events:
            return []
        out = list(self._events)
        self._events.clear()
        return out

    def _raise_if_lost(self) -> None:
        proto = self._proto
        if proto is None:
            raise ConnectionLostError(f"{self.host}: not connected")
        if proto.error is not None:
            self._desynced()
            raise _again(proto.error)
        if proto.bye is not None:
            self._desynced()  # the server is going away: do not wait for it to close
            raise ConnectionLostError(f"{self.host}: the server said BYE: {proto.bye}", server_said=proto.bye)
        if self._idle is not None and self._idle.done.done():
            self._idle = None
            raise ConnectionLostError(f"{self.host}: the server ended IDLE")

    def _emit(self, event: ServerEvent) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a broken callback must not kill the connection
                log.exception("on_event callback failed")
        else:
            if self._events is None:
                self._events = collections.deque(maxlen=MAX_QUEUED_EVENTS)
            self._events.append(event)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _untagged(self, number: int | None, kind: bytes, offset: int, response: Response) -> None:
        """Untagged responses no running command asked for (called by the protocol)."""
        try:
            if kind == b"EXISTS":
                self._emit(ServerEvent(EventKind.EXISTS, number=number))
            elif kind == b"EXPUNGE":
                self._emit(ServerEvent(EventKind.EXPUNGE, number=number))
            elif kind == b"RECENT":
                self._emit(ServerEvent(EventKind.RECENT, number=number))
            elif kind == b"FETCH" and number is not None:
                self._emit(fetch_event(parse_fetch(number, response, offset)))
            elif kind == b"VANISHED":
                self._emit(ServerEvent(EventKind.VANISHED, uids=tuple(vanished_uids(response, offset))))
            elif kind == b"BYE":
                self._emit(ServerEvent(EventKind.BYE, text=parse_status_text(response.first[offset:]).text))
            elif kind == b"CAPABILITY":
                self._caps = self._parse_caps(response.first[offset:])
            elif kind in (b"OK", b"NO", b"BAD"):
                text = parse_status_text(response.first[offset:])
                if text.code == "ALERT":
                    self._emit(ServerEvent(EventKind.ALERT, text=text.text))
                elif text.code == "CAPABILITY":
                    self._caps = self._parse_caps(text.code_args)
            else:
                log.debug("ignoring untagged %s from %s", kind[:20], self.host)
        except ProtocolError:
            log.debug("unparseable unsolicited response from %s: %r", self.host, response.first[:80])

    def _lost(self, error: MailportError) -> None:
        self._wake()

    # ================================================================== command machinery

    def _require_transport(self) -> tuple[ImapProtocol, asyncio.Transport]:
        proto, transport = self._proto, self._transport
        if proto is None or transport is None:
            raise ConnectionLostError(f"{self.host}:{self.port}: not connected")
        if proto.error is not None:
            raise _again(proto.error)
        return proto, transport

    def _begin(self, proto: ImapProtocol, wants: frozenset[bytes]) -> PendingCommand:
        self._tag += 1
        command = PendingCommand(b"A%d" % self._tag, asyncio.get_running_loop().create_future(), wants)
        proto.current = command
        return command

    def _desynced(self) -> None:
        """A command was abandoned half-way: the stream position is unknown, so close."""
        self._idle = None
        self.close()

    async def _run(
        self,
        *args: Arg,
        wants: Iterable[bytes] = (),
        timeout: float | None = None,
        converse: Callable[[PendingCommand], Any] | None = None,
        fetched: list[FetchedMessage] | None = None,
        seal: bool = False,
    ) -> CommandResult:
        """Send one command, wait (with a deadline) for its completion; NO/BAD -> CommandError."""
        if self._idle is not None:
            raise CommandError(f"{self.host}: the connection is in IDLE; call idle_done() first")
        deadline = timeout if timeout is not None else self.command_timeout
        name = args[0].decode() if isinstance(args[0], bytes) else "command"
        async with self._lock:
            proto, _ = self._require_transport()
            command = self._begin(proto, frozenset(wants))
            command.fetched = fetched
            command.seal_on_ok = seal
            proto.splitter.fetch_sink = fetched
            if fetched is not None:  # other responses routed in order with the parsed ones
                proto.splitter.fetch_route = proto.route
            try:
                async with asyncio.timeout(deadline):
                    await self._send(proto, command, args)
                    if converse is not None:
                        await converse(command)
                    status, rest = await command.done
            except TimeoutError as exc:
                self._desynced()
                raise MailTimeoutError(
                    f"{self.host}: no answer to {name.split()[0] if name != 'LOGIN' else 'LOGIN'} "
                    f"within {deadline:g} s; the connection was closed"
                ) from exc
            except MailportError as exc:
                if isinstance(exc, ConnectionLostError | ProtocolError):
                    self.close()
                raise
            except BaseException:
                self._desynced()
                raise
            finally:
                proto.splitter.fetch_sink = None
                proto.splitter.fetch_route = None
                if proto.current is command:
                    proto.current = None
        text = parse_status_text(rest)
        if text.code == "CAPABILITY":
            self._caps = self._parse_caps(text.code_args)
        if status == b"OK":
            return CommandResult(status, text, command.collected)
        if status in (b"NO", b"BAD"):
            raise CommandError(
                f"{self.host}: {name.split()[0]} failed: {status.decode()} {text.text}",
                server_said=text.said(),
                response_code=text.code,
                status=status.decode(),
            )
        raise ProtocolError(f"{self.host}: unexpected completion {status[:20]!r}")

    async def _send(self, proto: ImapProtocol, command: PendingCommand, args: Sequence[Arg]) -> None:
        caps = self._caps or frozenset()
        plus = "LITERAL+" in caps
        minus = "LITERAL-" in caps
        buffer = bytearray(command.tag)
        opened = False
        for arg in args:
            # one space between arguments, none inside parentheses: "(" and ")" travel with
            # the atoms they touch, so a literal may start or end a parenthesised list
            if not opened and not (isinstance(arg, bytes) and arg[:1] == b")"):
                buffer += b" "
            opened = isinstance(arg, bytes) and arg[-1:] == b"("
            if isinstance(arg, Literal):
                size = len(arg.data)
                if plus or (minus and size <= 4096):
                    buffer += b"{%d+}\r\n" % size
                    buffer += arg.data
                    continue
                buffer += b"{%d}\r\n" % size
                proto.write(bytes(buffer))
                buffer.clear()
                if await command.next_continuation() is None:
                    return  # the server refused the literal: its tagged NO completes the command
                buffer += arg.data
            else:
                buffer += arg
        buffer += b"\r\n"
        proto.write(bytes(buffer))

    def _parse_caps(self, raw: bytes) -> frozenset[str]:
        # Thousands of connections to one server share one capability set (a 40-entry
        # frozenset of strings is ~6 KiB per connection otherwise).
        key = (raw, self._ignore)
        caps = _CAPS_CACHE.get(key)
        if caps is None:
            caps = frozenset(c.decode("ascii", "replace").upper() for c in raw.split()) - self._ignore
            if len(_CAPS_CACHE) < 256:
                _CAPS_CACHE[key] = caps
        return caps

    def _caps_from_code(self, text: StatusText) -> frozenset[str] | None:
        if text.code == "CAPABILITY":
            self._caps = self._parse_caps(text.code_args)
            return self._caps
        return None


# ====================================================================== helpers


# RFC 5530 response codes of a refused password login that mean something else than "wrong
# user name or password".
_LOGIN_REFUSALS: dict[str, type[ProviderError]] = {
    "UNAVAILABLE": AuthUnavailableError,  # the authentication backend is down: retry
    "AUTHORIZATIONFAILED": MailboxAccessDeniedError,
    "PRIVACYREQUIRED": AuthMechanismUnsupportedError,
    "EXPIRED": AuthenticationError,
    "CONTACTADMIN": AuthenticationError,
}


def password_refused(message: str, refusal: CommandError, **details: Any) -> ProviderError:
    """What a tagged refusal of LOGIN / AUTHENTICATE PLAIN means. The tagged ``NO`` itself is
    the signal that the credentials were refused -- many servers send no response code, or
    only after a pause -- unless an RFC 5530 code says otherwise (``[UNAVAILABLE]`` is a
    temporary failure). A ``BAD`` is a protocol problem, not a verdict on the password. The
    troubleshooting catalog refines this further with the provider's words."""
    status = refusal.details.get("status")
    code = (refusal.details.get("response_code") or "").upper()
    kind: type[ProviderError] = _LOGIN_REFUSALS.get(code, InvalidCredentialsError)
    if status == "BAD":
        kind = AuthenticationError
    return kind(message, server_said=refusal.server_said, status=status, **details)


def _head(response: Response) -> tuple[int | None, bytes, int]:
    return untagged_head(response.first)


def _again(error: MailportError) -> MailportError:
    """A fresh exception of the same type for a connection that already failed (cause chained)."""
    try:
        again = type(error)(error.message, server_said=error.server_said)
    except TypeError:
        again = ConnectionLostError(error.message, server_said=error.server_said)
    again.__cause__ = error
    return again


def fetch_event(message: FetchedMessage) -> ServerEvent:
    return ServerEvent(EventKind.FETCH, number=message.seq, uid=message.uid, flags=message.flags)


def vanished_uids(response: Response, offset: int) -> list[int]:
    rest = response.first[offset:].strip()
    if rest.upper().startswith(b"(EARLIER)"):
        rest = rest[9:].strip()
    return parse_sequence_set(rest)
