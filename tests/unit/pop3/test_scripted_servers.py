"""The POP3 client against servers Dovecot cannot play: no CAPA, no UIDL, RFC 2449 / RFC 3206
response codes on login, an endless line, a silent server, a message over the limit."""

from __future__ import annotations

import pytest

from mailport.crypto import Secret
from mailport.errors import (
    AuthenticationError,
    AuthUnavailableError,
    CommandError,
    ConnectionLostError,
    InvalidCredentialsError,
    MaildropBusyError,
    MailTimeoutError,
    ProtocolError,
)
from mailport.failures import Verdict, classify
from mailport.pop3 import PasswordAuth, Pop3Client
from tests.fixtures.scripted_pop3 import POP3Script, scripted_pop3

AUTH = PasswordAuth("user@example.test", Secret("secret-pw"))


async def _open(port: int, **options: object) -> Pop3Client:
    return await Pop3Client.open(
        "127.0.0.1",
        port,
        security="none",
        allow_plaintext=True,
        allow_plaintext_auth=True,
        auth=AUTH,
        **options,  # type: ignore[arg-type]
    )


async def test_a_server_without_capa_logs_in_with_user_pass() -> None:
    script = POP3Script(capa=None, messages=[b"Subject: a\r\n\r\n.\r\nbody\r\n"])
    async with scripted_pop3(script) as port:
        client = await _open(port)
        assert client.capabilities == {}
        assert await client.uidl() == [(1, "uid-1")]
        assert (await client.retr(1)).data == b"Subject: a\r\n\r\n.\r\nbody\r\n"
        await client.quit()
    assert script.commands[:3] == ["CAPA", "USER user@example.test", "PASS ***"]


async def test_a_server_without_uidl_refuses_it() -> None:
    async with scripted_pop3(POP3Script(uidl=False)) as port:
        client = await _open(port)
        with pytest.raises(CommandError) as caught:
            await client.uidl()
        assert caught.value.server_said == "-ERR unknown command"
        await client.noop()  # still in step
        await client.quit()


@pytest.mark.parametrize(
    ("answer", "kind", "verdict"),
    [
        ("-ERR [IN-USE] Mailbox locked by another session", MaildropBusyError, Verdict.RETRY),
        ("-ERR [LOGIN-DELAY] Wait 15 minutes between logins", MaildropBusyError, Verdict.RETRY),
        ("-ERR [SYS/TEMP] Backend down", AuthUnavailableError, Verdict.RETRY),
        ("-ERR [AUTH] Invalid login", InvalidCredentialsError, Verdict.ERROR),
        ("-ERR Invalid login", InvalidCredentialsError, Verdict.ERROR),
        ("-ERR [SYS/PERM] Account disabled", AuthenticationError, Verdict.ERROR),
    ],
)
async def test_login_refusals_by_response_code(answer: str, kind: type[Exception], verdict: Verdict) -> None:
    async with scripted_pop3(POP3Script(passwd=answer)) as port:
        with pytest.raises(kind) as caught:
            await _open(port)
    assert type(caught.value) is kind
    assert caught.value.server_said == answer  # type: ignore[attr-defined]
    assert classify(caught.value) is verdict
    assert "secret-pw" not in repr(caught.value) and "secret-pw" not in str(caught.value)


async def test_an_endless_line_is_a_protocol_error() -> None:
    async with scripted_pop3(POP3Script(raw={"NOOP": b"+OK " + b"x" * 20_000 + b"\r\n"})) as port:
        client = await _open(port)
        with pytest.raises(ProtocolError):
            await client.noop()
        assert not client.connected
        with pytest.raises(ConnectionLostError):
            await client.noop()


async def test_a_silent_server_times_out_and_the_connection_is_closed() -> None:
    async with scripted_pop3(POP3Script(silent_on="STAT")) as port:
        client = await _open(port, command_timeout=0.3)
        with pytest.raises(MailTimeoutError):
            await client.stat()
        assert not client.connected


async def test_a_message_over_the_limit_is_skipped_and_the_session_stays_in_step() -> None:
    big = b"Subject: big\r\n\r\n" + b"0123456789\r\n" * 10_000
    script = POP3Script(messages=[big, b"Subject: small\r\n\r\nhi\r\n"])
    async with scripted_pop3(script) as port:
        client = await _open(port, max_message_bytes=50_000)
        skipped = await client.retr(1)
        assert skipped.data is None and skipped.size == len(big)
        assert (await client.top(1, 0)).data == b"Subject: big\r\n\r\n"
        assert (await client.retr(2)).data == b"Subject: small\r\n\r\nhi\r\n"
        await client.quit()


async def test_dele_takes_effect_only_with_quit() -> None:
    script = POP3Script(messages=[b"Subject: a\r\n\r\nx\r\n"])
    async with scripted_pop3(script) as port:
        client = await _open(port)
        await client.dele(1)
        client.close()  # cut: no QUIT
        assert not script.quit_applied
        client = await _open(port)
        await client.dele(1)
        await client.quit()
        assert script.quit_applied
