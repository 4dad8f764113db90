"""TLS over a plain asyncio connection with public APIs only, and no read buffer per connection.

Why by hand: asyncio's TLS transport (``asyncio.sslproto.SSLProtocol``) allocates a zero-filled
``bytearray(max_size)`` of 256 KiB per connection; shrinking it means subclassing a private
class whose internals changed between 3.11 and 3.13. An idle IMAP connection receives nothing
for minutes, so it should own no read buffer at all. :class:`TLSLayer` is one object that is
both the plain socket's ``asyncio.BufferedProtocol`` and the application protocol's
``asyncio.Transport``. It does TLS with the public ``ssl.MemoryBIO`` + ``SSLContext.wrap_bio``:

* **Shared scratch buffers.** The event loop runs one callback at a time and fills the buffer
  from ``get_buffer`` within the callback that calls ``buffer_updated``, so one receive buffer
  and one plaintext buffer per thread (:class:`_Scratch`) serve every connection. Large reads
  (256 KiB) during a bulk FETCH cost nothing per connection.
* **Record by record.** Incoming bytes are cut at TLS record boundaries (the 5-byte record
  header); complete records are written to the incoming ``MemoryBIO`` and decrypted at once, so
  ``SSLObject.read`` does not fail with ``SSLWantReadError`` on application data (~5 µs per
  exception measured here). A record split across reads waits in a per-connection
  ``bytearray`` only until it is complete. The plaintext of one read goes to the application
  as one ``bytes`` (the IMAP framer's cost is per call).
* **Bounded BIO memory.** OpenSSL's memory BIO never gives back capacity (measured: 68 KiB
  kept per BIO after one 64 KiB write). So at most ``slice`` bytes are written to it at once:
  during a bulk FETCH whole records (18 KiB: decrypting a record costs no exception), otherwise
  4 KiB pieces -- a large record then costs a few ``SSLWantReadError`` s, which idle traffic
  can afford. Outgoing data is encrypted in 4 KiB pieces. OpenSSL's own record buffers are
  released between records (``SSL_MODE_RELEASE_BUFFERS``, which CPython sets).
* **STARTTLS** is the same object switching from plaintext to TLS (:meth:`TLSLayer.start_tls`):
  no ``set_protocol`` on the socket's transport, and no byte can be read in plaintext in between
  that the application protocol does not see (it refuses them after STARTTLS's OK).

Close: ``close()`` sends close_notify and closes; a peer's close_notify is end of stream; a
peer that closes TCP without one is reported to the application as a lost connection with
:class:`TLSTruncatedError` as the cause (the IMAP client already treats it as a drop).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

RECORD_HEADER = 5
MAX_RECORD_PLAINTEXT = 16 * 1024
MAX_RECORD_CIPHERTEXT = MAX_RECORD_PLAINTEXT + 2048  # RFC 5246 6.2.3 (TLS 1.3: + 256)
RECV_BUFFER = 256 * 1024  # shared per thread: one recv() may take a whole burst
# shared per thread: the plaintext of one read (never more than its ciphertext plus the
# record carried over from the read before), handed to the application as one bytes
PLAIN_BUFFER = RECV_BUFFER + 3 * MAX_RECORD_PLAINTEXT
DEFAULT_IDLE_SLICE = 4 * 1024
WHOLE_RECORD = MAX_RECORD_CIPHERTEXT + RECORD_HEADER  # the largest TLS record
DEFAULT_BULK_SLICE = WHOLE_RECORD  # fed whole
WRITE_SLICE = 4 * 1024


class TLSTruncatedError(ConnectionError):
    """The peer closed the TCP connection without TLS close_notify (possible truncation)."""


class _Scratch(threading.local):
    """Per-thread buffers shared by every connection of the event loop running in that thread."""

    def __init__(self) -> None:
        self.recv: memoryview | None = None
        self.plain: memoryview | None = None

    def recv_view(self) -> memoryview:
        if self.recv is None:
            self.recv = memoryview(bytearray(RECV_BUFFER))
        return self.recv

    def plain_view(self) -> memoryview:
        if self.plain is None:
            self.plain = memoryview(bytearray(PLAIN_BUFFER))
        return self.plain


_scratch = _Scratch()


def _is_record_header(data: bytes | bytearray | memoryview, pos: int) -> bool:
    """A plausible TLS record header: content type 20-23, version 3.x, length within limits."""
    return (
        20 <= data[pos] <= 23
        and data[pos + 1] == 3
        and (data[pos + 3] << 8 | data[pos + 4]) <= MAX_RECORD_CIPHERTEXT
    )


class TLSLayer(asyncio.BufferedProtocol, asyncio.Transport):
    """The socket transport's protocol and the application's transport; plaintext until
    :meth:`start_tls`, TLS after."""

    __slots__ = (
        "app",
        "plain",
        "sslobj",
        "slice",
        "idle_slice",
        "_incoming",
        "_outgoing",
        "_partial",
        "_handshake",
        "_closing",
        "_close_notify",
        "_eof_told",
        "_lost",
        "_error",
    )

    def __init__(self, app: asyncio.Protocol, *, idle_slice: int = DEFAULT_IDLE_SLICE) -> None:
        self.app = app
        self.plain: asyncio.Transport | None = None
        self.sslobj: ssl.SSLObject | None = None
        self.idle_slice = idle_slice
        self.slice = idle_slice  # largest piece of a record written to the incoming BIO at once
        self._incoming: ssl.MemoryBIO | None = None
        self._outgoing: ssl.MemoryBIO | None = None
        self._partial: bytearray | None = None  # an incomplete record, only until it completes
        self._handshake: asyncio.Future[None] | None = None  # set while the handshake runs
        self._closing = False
        self._close_notify = False
        self._eof_told = False
        self._lost = False
        self._error: Exception | None = None  # what ended the connection, for connection_lost

    # ================================================================== TLS control
    async def start_tls(
        self, context: ssl.SSLContext, *, server_hostname: str | None, timeout: float
    ) -> None:
        """Run the client handshake on this connection (implicit TLS at once, or after STARTTLS).

        Raises what the handshake raised (``ssl.SSLCertVerificationError``, ``ssl.SSLError``,
        ``ConnectionError``) or ``TimeoutError``; the caller closes the connection then.
        """
        if self.sslobj is not None:
            raise RuntimeError("TLS is already active on this connection")
        if self.plain is None or self._lost:
            raise ConnectionResetError("the connection is closed")
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handshake = waiter
        self._step_handshake()
        try:
            async with asyncio.timeout(timeout):
                await waiter
        finally:
            self._handshake = None

    def bulk(self, on: bool, *, bulk_slice: int = DEFAULT_BULK_SLICE) -> None:
        """During a bulk FETCH feed whole records to OpenSSL (fast); otherwise small pieces
        (what an idle connection keeps in its BIO afterwards is at most one piece)."""
        self.slice = bulk_slice if on else self.idle_slice

    def _step_handshake(self) -> None:
        """One handshake step; on success or failure the waiter resolves and TLS is live/dead."""
        waiter = self._handshake
        assert self.sslobj is not None and waiter is not None
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, OSError) as exc:
            self._flush()
            self._handshake = None
            if not waiter.done():
                waiter.set_exception(exc)
            return
        self._flush()
        self._handshake = None
        if not waiter.done():
            waiter.set_result(None)

    def _flush(self) -> None:
        """Send what OpenSSL wrote to the outgoing BIO (handshake, alerts, KeyUpdate, data)."""
        outgoing = self._outgoing
        if outgoing is not None and outgoing.pending and self.plain is not None and not self._lost:
            self.plain.write(outgoing.read())

    # ================================================================== socket side (protocol)
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.plain = transport  # type: ignore[assignment]  # uvloop's are no asyncio subclasses
        self.app.connection_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _scratch.recv_view()

    def buffer_updated(self, nbytes: int) -> None:
        if self._closing or self._lost:
            return
        data = _scratch.recv_view()[:nbytes]
        if self.sslobj is None:
            self.app.data_received(bytes(data))
            return
        try:
            self._receive(data)
        except (ssl.SSLError, OSError) as exc:
            self._fatal(exc)  # e.g. a bad record MAC: the stream cannot be trusted any more

    def eof_received(self) -> bool | None:
        if self.sslobj is None:
            return self.app.eof_received()
        if self._close_notify:
            return False  # the application was told at close_notify
        if self._handshake is not None:
            self._fatal(ConnectionResetError("the server closed the connection during the TLS handshake"))
        else:
            log.debug("TLS peer closed without close_notify")
            self._fatal(TLSTruncatedError("the peer closed the connection without TLS close_notify"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket is closed (asyncio calls this a loop iteration after close or abort, so
        a command completed by the last bytes is seen by its waiter first)."""
        if self._lost:
            return
        self._lost = True
        error = self._error or exc
        self._fail_handshake(error or ConnectionResetError("the connection closed during the TLS handshake"))
        self._partial = None
        self.app.connection_lost(error)

    def pause_writing(self) -> None:
        self.app.pause_writing()

    def resume_writing(self) -> None:
        self.app.resume_writing()

    # ------------------------------------------------------------------ decrypting
    def _receive(self, data: memoryview) -> None:
        """Cut ``data`` at record boundaries, feed and decrypt every complete record, and hand
        the plaintext of this read to the application in one call (a bulk FETCH: ~256 KiB)."""
        filled = 0  # plaintext waiting in the shared buffer
        pos, end = 0, len(data)
        partial = self._partial
        if partial is not None:
            if len(partial) < RECORD_HEADER:
                take = min(RECORD_HEADER - len(partial), end)
                partial += data[:take]
                pos = take
                if len(partial) < RECORD_HEADER:
                    return
            if not _is_record_header(partial, 0):
                self._partial = None
                filled = self._not_tls(memoryview(partial), filled)
                filled = self._not_tls(data[pos:], filled)
                pos = end
            else:
                need = RECORD_HEADER + ((partial[3] << 8) | partial[4]) - len(partial)
                if need > end - pos:
                    partial += data[pos:]
                    return
                self._partial = None
                filled = self._feed(memoryview(partial), filled)
                filled = self._feed(data[pos : pos + need], filled)
                pos += need
                filled = self._decrypt(filled)
        if self._handshake is None and self.slice >= WHOLE_RECORD:
            pos, filled = self._records(data, pos, end, filled)
        start = pos
        while end - pos >= RECORD_HEADER:
            if not _is_record_header(data, pos):
                filled = self._batch(data[start:pos], filled)
                filled = self._not_tls(data[pos:end], filled)
                pos = start = end
                break
            stop = pos + RECORD_HEADER + ((data[pos + 3] << 8) | data[pos + 4])
            if stop > end:
                break
            if self._handshake is not None or stop - pos > self.slice:
                # one at a time: handshake steps, or a large record fed in pieces
                filled = self._batch(data[start:pos], filled)
                filled = self._decrypt(self._feed(data[pos:stop], filled))
                start = stop
            elif stop - start > self.slice:  # the batch would outgrow one BIO write
                filled = self._batch(data[start:pos], filled)
                start = pos
            pos = stop
        filled = self._batch(data[start:pos], filled)
        if pos < end:
            self._partial = bytearray(data[pos:])
        if self._outgoing is not None and self._outgoing.pending:
            self._flush()  # e.g. the answer to a KeyUpdate
        if filled:
            self._to_app(_scratch.plain_view(), filled)
        if self._close_notify and not self._eof_told and not self._lost:
            self._eof_told = True
            if not self.app.eof_received():
                self.close()

    def _records(self, data: memoryview, pos: int, end: int, filled: int) -> tuple[int, int]:
        """The bulk FETCH loop: write each complete record to the BIO and decrypt it at once.

        What :meth:`_batch` and :meth:`_decrypt` do for one record, with less around it: their
        calls, the header check and a ``pending()`` per 16 KiB record were ~0.6 µs of Python,
        ~4 % of the client's CPU per fetched message (``bench/imap_fetch_cpu.py``). The usual
        record (application data read whole by one ``read``) is decrypted here without calling
        :meth:`_drain` (~70 ns per message less); anything else -- the buffer filled to the
        byte, the BIO not emptied -- goes through it. One record per BIO write keeps the BIO
        at one record (see *Bounded BIO memory*). Stops at the first incomplete record or
        non-record bytes, which the general loop handles; returns (position, plaintext filled).
        """
        sslobj = self.sslobj
        incoming = self._incoming
        assert sslobj is not None and incoming is not None
        buf = _scratch.plain_view()
        read: Callable[[int, memoryview], int] = sslobj.read  # type: ignore[assignment]  # with a buffer: a count
        write = incoming.write
        size = len(buf)
        limit = size - MAX_RECORD_PLAINTEXT
        while end - pos >= RECORD_HEADER:
            if not (20 <= data[pos] <= 23 and data[pos + 1] == 3):
                break
            length = data[pos + 3] << 8 | data[pos + 4]
            stop = pos + RECORD_HEADER + length
            if length > MAX_RECORD_CIPHERTEXT or stop > end:
                break
            write(data[pos:stop])
            pos = stop
            want = size - filled
            try:
                got = read(want, buf[filled:])
            except ssl.SSLWantReadError:
                continue  # a record without application data (a session ticket, a KeyUpdate)
            except ssl.SSLZeroReturnError:
                got = 0
            if not got:  # the peer's close_notify
                self._close_notify = True
                continue
            filled += got
            if filled > limit:
                self._to_app(buf, filled)
                filled = 0
            if got == want or incoming.pending:  # not the usual one record read whole: the general drain
                filled = self._drain(sslobj, incoming, buf, filled)
        return pos, filled

    def _not_tls(self, data: memoryview, filled: int) -> int:
        """Bytes that are no TLS record (a plaintext port, garbage): OpenSSL raises its own
        error on them at once (``WRONG_VERSION_NUMBER``...), as it would for asyncio's TLS."""
        assert self._incoming is not None
        if data:
            self._incoming.write(data)
        return self._decrypt(filled)

    def _batch(self, records: memoryview, filled: int) -> int:
        """Write complete records to the BIO at once and decrypt them."""
        if not records:
            return filled
        assert self._incoming is not None
        self._incoming.write(records)
        return self._decrypt(filled)

    def _feed(self, piece: memoryview, filled: int) -> int:
        """Write a piece of one record, in ``slice`` parts; OpenSSL takes each part at once."""
        incoming = self._incoming
        assert incoming is not None
        step = self.slice
        if len(piece) <= step:
            incoming.write(piece)
            return filled
        for offset in range(0, len(piece), step):
            incoming.write(piece[offset : offset + step])
            if offset + step < len(piece) and self._handshake is None:
                filled = self._decrypt(filled)  # moves the partial record into OpenSSL's buffer
        return filled

    def _decrypt(self, filled: int) -> int:
        """Decrypt what the BIO holds into the shared buffer after ``filled``; returns the new fill.

        Only complete records are in the BIO (or one partial record being fed in pieces), so
        ``SSLWantReadError`` is rare: a session ticket or KeyUpdate, or that partial record.
        """
        if self._handshake is not None:
            self._step_handshake()
            if self._handshake is not None or self._incoming is None or not self._incoming.pending:
                return filled
        sslobj = self.sslobj
        incoming = self._incoming
        assert sslobj is not None and incoming is not None
        return self._drain(sslobj, incoming, _scratch.plain_view(), filled)

    def _drain(self, sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO, buf: memoryview, filled: int) -> int:
        """Decrypt what OpenSSL has (in the BIO or buffered) into ``buf`` after ``filled``."""
        read: Callable[[int, memoryview], int] = sslobj.read  # type: ignore[assignment]  # with a buffer: a count
        size = len(buf)
        limit = size - MAX_RECORD_PLAINTEXT
        while incoming.pending or sslobj.pending():
            want = size - filled
            try:
                got = read(want, buf[filled:])
            except ssl.SSLWantReadError:
                break  # no application data (a session ticket, a KeyUpdate) or a partial record
            except ssl.SSLZeroReturnError:
                got = 0
            if not got:  # CPython returns 0 for the peer's close_notify
                self._close_notify = True
                break
            filled += got
            if filled > limit:
                self._to_app(buf, filled)
                filled = 0
            # SSL_read returns one record at most: less than asked for means it is used up, so
            # the pending() call (a Python method) is needed only when the BIO has more
            if got < want and not incoming.pending:
                break
        return filled

    def _fail_handshake(self, exc: BaseException) -> None:
        waiter, self._handshake = self._handshake, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _to_app(self, buf: memoryview, filled: int) -> None:
        if not self._lost and not self._closing:  # the application may have aborted meanwhile
            self.app.data_received(bytes(buf[:filled]))

    def _fatal(self, exc: Exception) -> None:
        """A TLS error or truncation: nothing more is read; the application gets ``exc`` in
        ``connection_lost`` when the socket is closed."""
        self._fail_handshake(exc)
        if self._error is None:
            self._error = exc
        self._closing = True
        self._partial = None
        if self.plain is not None:
            self.plain.abort()

    # ================================================================== application side (transport)
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.plain is None or self._lost or self._closing:
            return
        sslobj = self.sslobj
        if sslobj is None:
            self.plain.write(data)
            return
        outgoing = self._outgoing
        assert outgoing is not None
        view = memoryview(data)
        if len(view) <= WRITE_SLICE:
            sslobj.write(view)
            self.plain.write(outgoing.read())
            return
        chunks: list[bytes] = []
        for offset in range(0, len(view), WRITE_SLICE):
            sslobj.write(view[offset : offset + WRITE_SLICE])
            chunks.append(outgoing.read())
        self.plain.writelines(chunks)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS connections do not support half-close")

    def close(self) -> None:
        """Send close_notify (without waiting for the peer's) and close the socket."""
        if self._closing or self.plain is None:
            return
        self._closing = True
        if self.sslobj is not None and not self._lost and self._handshake is None:
            try:
                self.sslobj.unwrap()
            except ssl.SSLError:
                pass  # SSLWantReadError: the peer's close_notify is not awaited
            self._flush()
        self.plain.close()

    def abort(self) -> None:
        self._closing = True
        if self.plain is not None:
            self.plain.abort()

    def is_closing(self) -> bool:
        return self._closing or self._lost or self.plain is None or self.plain.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        sslobj = self.sslobj
        if sslobj is not None and self._handshake is None:
            if name == "ssl_object":
                return sslobj
            if name == "sslcontext":
                return sslobj.context
            if name == "peercert":
                return sslobj.getpeercert()
            if name == "cipher":
                return sslobj.cipher()
            if name == "compression":
                return sslobj.compression()
        return self.plain.get_extra_info(name, default) if self.plain is not None else default

    def pause_reading(self) -> None:
        if self.plain is not None:
            self.plain.pause_reading()

    def resume_reading(self) -> None:
        if self.plain is not None:
            self.plain.resume_reading()

    def is_reading(self) -> bool:
        return self.plain is not None and self.plain.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.app = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.app

    def get_write_buffer_size(self) -> int:
        return self.plain.get_write_buffer_size() if self.plain is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.plain.get_write_buffer_limits() if self.plain is not None else (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self.plain is not None:
            self.plain.set_write_buffer_limits(high, low)
