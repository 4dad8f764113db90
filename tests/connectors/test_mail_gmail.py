"""Gmail's extensions over a scripted server that speaks as Gmail does (X-GM-EXT-1): labels in
listings (decoded from modified UTF-7) and of one message, and labels set and cleared with
``X-GM-LABELS``. The
real server offers no such thing, so the conversation is scripted."""

from __future__ import annotations

from mailport.connectors.base import MessageRef
from mailport.connectors.imap import ImapConnector
from mailport.connectors.mail import FlagChange, ListQuery
from tests.connectors.mailbed import make_mailbox
from tests.fixtures.imap import ScriptedConnection, ScriptedImapServer, answer_login

GMAIL_CAPS = (
    b"IMAP4rev1 UNSELECT IDLE NAMESPACE ID CHILDREN X-GM-EXT-1 UIDPLUS ENABLE MOVE CONDSTORE "
    b"ESEARCH LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE AUTH=PLAIN"
)
HEADERS = b"From: Ann <ann@gmail.test>\r\nSubject: labelled\r\nMessage-ID: <l@gmail.test>\r\n\r\n"


def fetch_reply() -> bytes:
    return (
        b'* 1 FETCH (X-GM-LABELS ("\\\\Important" "Work/Gr&APYA3w-e" Inbox) UID 7 FLAGS (\\Seen) '
        b'INTERNALDATE "01-Mar-2024 10:00:00 +0000" RFC822.SIZE 900 '
        b'BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "UTF-8") NIL NIL "7BIT" 5 1 NIL NIL NIL) '
        b"BODY[HEADER.FIELDS (FROM TO CC REPLY-TO SUBJECT DATE MESSAGE-ID IN-REPLY-TO REFERENCES)] {%d}\r\n"
        % len(HEADERS)
        + HEADERS
        + b")\r\n"
    )


RAW = HEADERS + b"hello\r\n"
SELECTED = b"* 1 EXISTS\r\n* OK [UIDVALIDITY 11] UIDs valid\r\n* OK [UIDNEXT 8] next\r\n"
REPLIES = {
    b"EXAMINE": SELECTED,
    b"SELECT": SELECTED,
    b"UID SEARCH": b'* ESEARCH (TAG "x") UID ALL 7\r\n',
}


async def gmail(conn: ScriptedConnection) -> None:
    await answer_login(conn, capabilities=GMAIL_CAPS)
    while True:
        tag, verb, line = await conn.read_command()
        if verb == b"LOGOUT":
            await conn.send(b"* BYE bye\r\n" + tag + b" OK done\r\n")
            return
        reply = REPLIES.get(verb, b"")
        if verb == b"UID FETCH" and b"BODY.PEEK[]" in line:
            reply = (
                b'* 1 FETCH (UID 7 FLAGS (\\Seen) INTERNALDATE "01-Mar-2024 10:00:00 +0000" '
                b"RFC822.SIZE %d BODY[] {%d}\r\n" % (len(RAW), len(RAW)) + RAW + b")\r\n"
            )
        elif verb == b"UID FETCH" and b"BODYSTRUCTURE" not in line:
            reply = b'* 1 FETCH (UID 7 X-GM-LABELS ("\\\\Important" Inbox))\r\n'
        elif verb == b"UID FETCH":
            reply = fetch_reply()
        await conn.send(reply + tag + b" OK done\r\n")


async def test_labels_are_listed_decoded_and_changed_with_x_gm_labels() -> None:
    async with ScriptedImapServer(gmail) as server:
        connector = ImapConnector(make_mailbox("imap", "ann@gmail.test", "pw", server.port))
        await connector.connect()
        try:
            [item] = (await connector.list_messages(ListQuery())).items
            assert item.labels == ("\\Important", "Work/Größe", "Inbox")
            assert item.flags == ("seen",) and item.envelope.subject == "labelled"
            assert item.has_attachments is False and item.preview is None
            message = await connector.fetch_message(item.ref)
            assert message.raw == RAW and message.flags == ("seen",)
            assert message.labels == ("\\Important", "Inbox")
            await connector.update_flags(
                [MessageRef("INBOX", "11", "7")],
                FlagChange(add_labels=frozenset({"Größe"}), remove_labels=frozenset({"\\Important"})),
            )
        finally:
            await connector.disconnect()
    assert not server.errors
    stores = [line.split(b" ", 1)[1] for line in server.commands if b"X-GM-LABELS." in line]
    assert stores == [
        b"UID STORE 7 +X-GM-LABELS.SILENT (Gr&APYA3w-e)",
        b'UID STORE 7 -X-GM-LABELS.SILENT ("\\\\Important")',
    ]
    fetches = [line for line in server.commands if b"UID FETCH" in line]
    assert b"X-GM-LABELS" in fetches[0] and b"PREVIEW" not in fetches[0]
