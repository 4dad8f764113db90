"""The IMAP and SMTP clients on a socket the SSRF guard connected (``sock=``): they connect to the
vetted address and still verify the certificate against the host *name*."""

from __future__ import annotations

import ipaddress

import pytest

from mailport.crypto import Secret
from mailport.errors import TLSError
from mailport.imap import ImapClient
from mailport.net.guard import VettedHost, connect_vetted
from mailport.sasl import PasswordAuth
from mailport.smtp import SmtpClient
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer

LOOPBACK = (ipaddress.ip_address("127.0.0.1"),)


def vetted(port: int, name: str) -> VettedHost:
    return VettedHost(name, port, LOOPBACK, name, "allowed_hosts")


async def test_imap_on_a_vetted_socket_verifies_the_name(
    dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    target = vetted(dovecot.imaps_port, "localhost")  # the certificate names localhost
    client = ImapClient(
        target.host, target.port, ca_file=dovecot.ca_file, server_hostname=target.server_hostname
    )
    await client.connect_tcp(sock=await connect_vetted(target, timeout=5))
    info = await client.tls_handshake()
    assert info.verified and "localhost" in info.san
    await client.read_greeting()
    await client.authenticate(PasswordAuth(user, Secret(password)))
    assert (await client.select("INBOX", readonly=True)).uidvalidity
    await client.logout()

    wrong = vetted(dovecot.imaps_port, "imap.elsewhere.test")  # same address, another name
    other = ImapClient(wrong.host, wrong.port, ca_file=dovecot.ca_file, server_hostname=wrong.server_hostname)
    await other.connect_tcp(sock=await connect_vetted(wrong, timeout=5))
    with pytest.raises(TLSError) as info_error:
        await other.tls_handshake()
    assert "imap.elsewhere.test" in str(info_error.value) or "mismatch" in str(info_error.value).lower()


async def test_smtp_on_a_vetted_socket_step_by_step(
    smtp: SubmissionServer, dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    target = vetted(smtp.port, "localhost")
    client = SmtpClient(
        "localhost",
        smtp.port,
        security="starttls",
        ca_file=dovecot.ca_file,
        sock=await connect_vetted(target, timeout=5),
    )
    assert (await client.greet()).startswith("220 ")
    assert "starttls" in {k.lower() for k in await client.ehlo()}
    info = await client.starttls()
    assert info is not None and info.verified
    assert "PLAIN" in client.auth_mechanisms
    await client.authenticate(PasswordAuth(user, Secret(password)))
    await client.quit()


async def test_smtp_on_a_vetted_socket_in_one_call(smtp: SubmissionServer, dovecot: Dovecot) -> None:
    async def client(server_hostname: str) -> SmtpClient:
        return SmtpClient(
            "127.0.0.1",
            smtp.tls_port,
            security="tls",
            ca_file=dovecot.ca_file,
            sock=await connect_vetted(vetted(smtp.tls_port, "127.0.0.1"), timeout=5),
            server_hostname=server_hostname,
        )

    good = await client("localhost")
    await good.connect()
    assert good.encrypted
    await good.quit()
    wrong = await client("smtp.elsewhere.test")
    with pytest.raises(TLSError, match="certificate verification failed"):
        await wrong.connect()
