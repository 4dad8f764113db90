"""NAMESPACE (RFC 2342) against real servers: the bed's Dovecot (personal prefix "" with "/"), the
dotted one (``INBOX.`` with "."), and a server without the capability (the client told to ignore
it): then the separator comes from ``LIST "" ""`` and the prefix is empty."""

from __future__ import annotations

from mailport.imap import Namespace
from tests.mailstack.dovecot import Dovecot


async def test_namespace_on_the_plain_and_the_dotted_server(
    dovecot: Dovecot, dovecot_dotted: Dovecot
) -> None:
    plain = await dovecot.client(*dovecot.dyn_user("nsplain"))
    dotted = await dovecot_dotted.client(*dovecot_dotted.dyn_user("nsdotted"))
    try:
        assert (await plain.namespace()).personal == (Namespace("", "/"),)
        found = await dotted.namespace()
        assert found.personal == (Namespace("INBOX.", "."),)
        assert (found.other, found.shared) == ((), ())
        assert found.qualify("Processed") == "INBOX.Processed"
    finally:
        await plain.logout()
        await dotted.logout()


async def test_a_server_without_namespace_gives_the_list_separator(dovecot_dotted: Dovecot) -> None:
    client = await dovecot_dotted.client(
        *dovecot_dotted.dyn_user("nsnone"), ignore_capabilities=["NAMESPACE"]
    )
    try:
        assert not client.has("NAMESPACE")
        found = await client.namespace()
        assert found.personal == (Namespace("", "."),)
        assert found.qualify("Processed") == "Processed"
    finally:
        await client.logout()
