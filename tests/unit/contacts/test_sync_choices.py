"""The pure choices of harvesting: which folders a run reads, which folders the event stream
takes, and one digest for a message whichever way its header came."""

from __future__ import annotations

from mailport.connectors.folders import Folder, Role
from mailport.connectors.header_fields import select, wanted
from mailport.contacts.feed import block_of, wanted_folder
from mailport.contacts.harvest import message_digest
from mailport.contacts.harvesting import WANTED, normal_block
from mailport.contacts.models import ContactSettings
from mailport.contacts.sync import choose_folders


def folder(path: str, role: Role | None = None, *, selectable: bool = True) -> Folder:
    return Folder(path, "/", path.rsplit("/", 1)[-1], role, None, None, True, selectable)


SERVER = [
    folder("INBOX", Role.INBOX),
    folder("Sent", Role.SENT),
    folder("Drafts", Role.DRAFTS),
    folder("Trash", Role.TRASH),
    folder("Junk", Role.JUNK),
    folder("Archive", Role.ARCHIVE),
    folder("Projects/Acme"),
    folder("Projects", selectable=False),
]


def test_every_folder_but_junk_trash_drafts_and_flagged_or_all_mail_and_sent() -> None:
    assert choose_folders(ContactSettings(), SERVER) == ["INBOX", "Sent", "Archive", "Projects/Acme"]
    gmail = [
        folder("INBOX", Role.INBOX),
        folder("[Gmail]/All Mail", Role.ALL),
        folder("[Gmail]/Sent Mail", Role.SENT),
        folder("[Gmail]/Starred", Role.FLAGGED),
        folder("[Gmail]/Spam", Role.JUNK),
        folder("Work"),
    ]
    assert choose_folders(ContactSettings(), gmail) == ["[Gmail]/All Mail", "[Gmail]/Sent Mail"]
    # the Gmail API lists labels only; its connector names the All Mail it reads instead of them
    labels = [folder("INBOX", Role.INBOX), folder("IMPORTANT"), folder("SENT", Role.SENT), folder("Work")]
    assert choose_folders(ContactSettings(), labels, all_mail="ALL") == ["ALL", "SENT"]
    assert choose_folders(ContactSettings(), gmail, all_mail="ALL")[0] == "[Gmail]/All Mail"
    chosen = ContactSettings(folders=("INBOX", "Projects/Acme"))
    assert choose_folders(chosen, SERVER) == ["INBOX", "Projects/Acme"]


def test_the_event_stream_takes_the_folders_a_run_would() -> None:
    default = ContactSettings()
    assert [
        f for f in ("INBOX", "inbox", "Sent", "INBOX.Sent", "Work/Acme") if wanted_folder(default, f)
    ] == [
        "INBOX",
        "inbox",
        "Sent",
        "INBOX.Sent",
        "Work/Acme",
    ]
    assert not any(
        wanted_folder(default, f) for f in ("Junk", "INBOX.Trash", "Drafts", "[Gmail]/Spam", "SPAM")
    )
    assert [f for f in ("INBOX", "Sent") if wanted_folder(ContactSettings(folders=("Sent",)), f)] == ["Sent"]


RAW = (
    b"Received: from mx by host; Mon, 2 Nov 2026 09:00:00 +0000\r\n"
    b"Subject: a long\r\n subject\r\n"
    b"From: =?utf-8?Q?J=C3=B6rg?=\r\n <joerg@example.org>\r\n"
    b"To: me@example.com,\r\n\tbob@example.net\r\n"
    b"Date: Mon, 2 Nov 2026 09:00:00 +0000\r\n"
    b"\r\nbody From: nobody@example.org\r\n"
)


def test_one_digest_for_a_message_without_message_id_whichever_way_it_came() -> None:
    fields = select(RAW, wanted(WANTED))  # what IMAP's HEADER.FIELDS or a mail API gives
    headers = [
        ["Received", "from mx"],
        ["From", "=?utf-8?Q?J=C3=B6rg?= <joerg@example.org>"],
        ["To", "me@example.com, bob@example.net"],  # refolded: one blank where the source had a tab
        ["Date", "Mon, 2 Nov 2026 09:00:00 +0000"],
    ]
    from_events = block_of(None, {"headers": headers})  # a message.received payload's headers
    stored = normal_block(block_of(RAW, {}))
    assert stored == normal_block(fields) == normal_block(from_events)
    assert b"subject" not in stored and b"nobody" not in stored
    assert message_digest(stored) == message_digest(normal_block(fields))
