"""Gmail's IMAP extensions against a scripted server that offers ``X-GM-EXT-1`` and answers as
Gmail does (https://developers.google.com/gmail/imap/imap-extensions): labels in listings
(``X-GM-LABELS``, modified UTF-7), a conversation by ``X-GM-THRID`` from All Mail, ``X-GM-RAW``
for ``has_attachment`` and through ``native`` (non-ASCII as a literal after CHARSET UTF-8). And a
server that cannot search UTF-8 (``NO [BADCHARSET]``): 422 ``unsupported_feature``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from mailport.connectors.imap import ImapConnector
from mailport.connectors.mail import ListQuery, SearchQuery
from mailport.errors import UnsupportedFeatureError
from mailport.imap.parser import parse_sequence_set
from tests.connectors.mailbed import make_mailbox
from tests.fixtures.imap import ScriptedConnection, ScriptedImapServer

GMAIL_CAPS = (
    b"IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS COMPRESS=DEFLATE "
    b"ENABLE MOVE CONDSTORE ESEARCH UTF8=ACCEPT LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE "
    b"APPENDLIMIT=35651584 AUTH=PLAIN"
)
ALL_MAIL = "[Gmail]/All Mail"
PLAIN = b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 12 1 NIL NIL NIL NIL)'
WITH_PDF = (
    b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 12 1 NIL NIL NIL NIL)'
    b'("application" "pdf" ("name" "a.pdf") NIL NIL "base64" 400 NIL ("attachment" ("filename" "a.pdf")) '
    b'NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)'
)


@dataclass
class GmailMessage:
    uid: int
    subject: str
    message_id: str
    thrid: int
    labels: bytes
    structure: bytes = PLAIN
    references: str = ""

    def header(self) -> bytes:
        refs = (
            f"References: {self.references}\r\nIn-Reply-To: {self.references.split()[-1]}\r\n"
            if self.references
            else ""
        )
        return (
            f"From: Shop <shop@shop.test>\r\nSubject: {self.subject}\r\nMessage-ID: {self.message_id}\r\n"
            f"Date: Mon, 02 Jun 2025 09:0{self.uid}:00 +0000\r\n{refs}\r\n"
        ).encode()


@dataclass
class GmailScript:
    """All Mail holds every message; INBOX the ones labelled \\Inbox."""

    messages: list[GmailMessage] = field(
        default_factory=lambda: [
            GmailMessage(1, "Angebot", "<root@shop.test>", 77, b'(\\Inbox "Kunden/&AMQ-rger")'),
            GmailMessage(2, "Re: Angebot", "<a1@box.test>", 77, b"(\\Sent)", references="<root@shop.test>"),
            GmailMessage(
                3,
                "Re: Angebot",
                "<s2@shop.test>",
                77,
                b"(\\Inbox \\Important)",
                WITH_PDF,
                references="<root@shop.test> <a1@box.test>",
            ),
            GmailMessage(4, "Other", "<other@else.test>", 88, b"(\\Inbox)"),
        ]
    )
    searches: list[bytes] = field(default_factory=list)

    def uids_for(self, line: bytes) -> list[int]:
        self.searches.append(line)
        if b"X-GM-THRID 77" in line:
            return [1, 2, 3]
        if b'X-GM-RAW "has:attachment"' in line:
            return [3]
        if b"X-GM-RAW" in line:  # the native query of the test
            return [2]
        if b"HEADER Message-ID <root@shop.test>" in line:
            return [1, 2, 3]  # Gmail's HEADER search also matches References
        return [m.uid for m in self.messages]

    async def __call__(self, conn: ScriptedConnection) -> None:
        await conn.send(b"* OK Gimap ready for requests from 127.0.0.1\r\n")
        while True:
            tag, verb, line = await conn.read_command()
            if verb == b"CAPABILITY":
                await conn.send(
                    b"* CAPABILITY " + GMAIL_CAPS + b"\r\n" + tag + b" OK Thats all she wrote!\r\n"
                )
            elif verb in (b"LOGIN", b"AUTHENTICATE"):
                await conn.send(
                    tag + b" OK [CAPABILITY " + GMAIL_CAPS + b"] user authenticated (Success)\r\n"
                )
            elif verb == b"NAMESPACE":
                await conn.send(b'* NAMESPACE (("" "/")) NIL NIL\r\n' + tag + b" OK Success\r\n")
            elif verb == b"LIST":
                await conn.send(
                    b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
                    b'* LIST (\\HasChildren \\Noselect) "/" "[Gmail]"\r\n'
                    b'* LIST (\\All \\HasNoChildren) "/" "[Gmail]/All Mail"\r\n'
                    b'* LIST (\\HasNoChildren \\Sent) "/" "[Gmail]/Sent Mail"\r\n' + tag + b" OK Success\r\n"
                )
            elif verb in (b"SELECT", b"EXAMINE"):
                await conn.send(
                    b"* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen)\r\n"
                    b"* OK [UIDVALIDITY 11] UIDs valid.\r\n* 4 EXISTS\r\n* 0 RECENT\r\n"
                    b"* OK [UIDNEXT 5] Predicted next UID.\r\n" + tag + b" OK [READ-ONLY] Success\r\n"
                )
            elif verb == b"UID SEARCH":
                found = self.uids_for(line)
                numbers = ",".join(map(str, found)).encode()
                await conn.send(
                    b'* ESEARCH (TAG "'
                    + tag
                    + b'") UID'
                    + (b" ALL " + numbers if found else b"")
                    + b"\r\n"
                    + tag
                    + b" OK SEARCH completed (Success)\r\n"
                )
            elif verb == b"UID FETCH":
                wanted = set(parse_sequence_set(line.split()[3]))
                out = b""
                for n, m in enumerate(self.messages, start=1):
                    if m.uid not in wanted:
                        continue
                    if b"X-GM-THRID" in line:
                        out += b"* %d FETCH (X-GM-THRID %d UID %d)\r\n" % (n, m.thrid, m.uid)
                        continue
                    header = m.header()
                    out += (
                        b"* %d FETCH (X-GM-LABELS %s UID %d FLAGS (\\Seen) "
                        b'INTERNALDATE "02-Jun-2025 09:0%d:00 +0000" RFC822.SIZE 900 BODYSTRUCTURE %s '
                        b"BODY[HEADER.FIELDS (FROM TO CC REPLY-TO SUBJECT DATE MESSAGE-ID IN-REPLY-TO "
                        b"REFERENCES)] {%d}\r\n%s)\r\n"
                        % (n, m.labels, m.uid, m.uid, m.structure, len(header), header)
                    )
                await conn.send(out + tag + b" OK Success\r\n")
            elif verb == b"NOOP":  # a search brings a folder that stayed selected up to date
                await conn.send(tag + b" OK Success\r\n")
            elif verb == b"LOGOUT":
                await conn.send(b"* BYE LOGOUT Requested\r\n" + tag + b" OK 73 good day (Success)\r\n")
                return
            else:
                await conn.send(tag + b" BAD Unknown command\r\n")


@pytest.fixture
async def gmail() -> tuple[ImapConnector, GmailScript]:  # type: ignore[misc]
    script = GmailScript()
    async with ScriptedImapServer(script) as server:
        connector = ImapConnector(make_mailbox("imap", "someone@gmail.com", "app-password", server.port))
        await connector.connect()
        try:
            yield connector, script
        finally:
            await asyncio.wait_for(connector.disconnect(), 5)
        assert not server.errors, server.errors


async def test_labels_come_with_listings(gmail: tuple[ImapConnector, GmailScript]) -> None:
    connector, _ = gmail
    page = await connector.list_messages(ListQuery(folder=ALL_MAIL))
    labels = {s.envelope.message_id: s.labels for s in page.items}
    assert labels["root@shop.test"] == ("\\Inbox", "Kunden/Ärger")
    assert labels["s2@shop.test"] == ("\\Inbox", "\\Important")


async def test_a_thread_is_gmails_conversation_from_all_mail(
    gmail: tuple[ImapConnector, GmailScript],
) -> None:
    connector, script = gmail
    thread = await connector.thread_messages("root@shop.test")
    assert [(s.folder, s.envelope.message_id) for s in thread] == [
        (ALL_MAIL, "root@shop.test"),
        (ALL_MAIL, "a1@box.test"),
        (ALL_MAIL, "s2@shop.test"),
    ]
    assert {s.thread_root for s in thread} == {"root@shop.test"}
    assert any(b"UID SEARCH RETURN (ALL) X-GM-THRID 77" in line for line in script.searches)


async def test_x_gm_raw_answers_attachments_and_native(gmail: tuple[ImapConnector, GmailScript]) -> None:
    connector, script = gmail
    page = await connector.search_messages(SearchQuery(folder=ALL_MAIL, has_attachment=True))
    assert [s.envelope.message_id for s in page.items] == ["s2@shop.test"]
    assert script.searches[-1].endswith(b'UID SEARCH RETURN (ALL) X-GM-RAW "has:attachment"')

    raw = "in:sent Grüße".encode()
    page = await connector.search_messages(SearchQuery(folder=ALL_MAIL, native='X-GM-RAW "in:sent Grüße"'))
    assert [s.envelope.message_id for s in page.items] == ["a1@box.test"]
    assert script.searches[-1].endswith(
        b"UID SEARCH RETURN (ALL) CHARSET UTF-8 X-GM-RAW {%d+}\r\n" % len(raw) + raw
    )


async def test_a_server_that_cannot_search_utf8_is_unsupported() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.send(b"* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] old server ready\r\n")
        while True:
            tag, verb, line = await conn.read_command()
            if verb in (b"LOGIN", b"AUTHENTICATE"):
                await conn.send(tag + b" OK [CAPABILITY IMAP4rev1 LITERAL+] logged in\r\n")
            elif verb in (b"SELECT", b"EXAMINE"):
                await conn.send(
                    b"* 1 EXISTS\r\n* OK [UIDVALIDITY 3] ok\r\n" + tag + b" OK [READ-ONLY] done\r\n"
                )
            elif verb == b"UID SEARCH":
                await conn.send(
                    tag + b" NO [BADCHARSET (US-ASCII)] The specified charset is not supported\r\n"
                )
            elif verb == b"LOGOUT":
                await conn.send(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                return

    async with ScriptedImapServer(script) as server:
        connector = ImapConnector(make_mailbox("imap", "old@example.test", "pw", server.port))
        await connector.connect()
        try:
            with pytest.raises(UnsupportedFeatureError) as refused:
                await connector.search_messages(SearchQuery(subject="Grüße"))
        finally:
            await asyncio.wait_for(connector.disconnect(), 5)
    assert (refused.value.code, refused.value.http_status) == ("unsupported_feature", 422)
    assert "not ASCII" in str(refused.value) and "BADCHARSET" in str(refused.value)
