"""One health row for a mailbox's folder watchers (:class:`mailport.sync.folders.MailboxFolders`):
the worst folder wins, ``last_error`` names each failing folder, a folder connecting while another
still fails writes nothing (the error would count twice), and one folder records as before."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailport.mailboxes.models import MailboxStatus, WatchedFolder
from mailport.sync.folders import MailboxFolders

AT = datetime(2026, 12, 5, tzinfo=UTC)


@dataclass
class Recorded:
    """A HealthSink that keeps what it was asked to write."""

    writes: list[tuple[MailboxStatus, str | None]] = field(default_factory=list)

    async def record_health(
        self,
        tenant_id: str,
        mailbox_id: str,
        *,
        status: MailboxStatus,
        error: str | None,
        at: datetime,
        fence: object = None,
    ) -> object:
        self.writes.append((status, error))
        return object()


async def _say(folders: MailboxFolders, spec: str, status: MailboxStatus, error: str | None = None) -> None:
    await folders.sink(spec).record_health("ten", "mbx", status=status, error=error, at=AT)  # type: ignore[arg-type]


async def test_the_worst_folder_wins_and_each_failing_folder_is_named() -> None:
    sink = Recorded()
    folders = MailboxFolders(sink, [WatchedFolder("INBOX"), WatchedFolder("role:sent")])  # type: ignore[arg-type]
    await _say(folders, "INBOX", MailboxStatus.CONNECTED)
    await _say(folders, "role:sent", MailboxStatus.ERROR, "[folder_not_found] no sent folder")
    await _say(folders, "INBOX", MailboxStatus.CONNECTED)  # changes nothing: not written again
    assert sink.writes == [
        (MailboxStatus.CONNECTED, None),
        (MailboxStatus.ERROR, "folder role:sent: [folder_not_found] no sent folder"),
    ]
    await _say(folders, "INBOX", MailboxStatus.REAUTH_REQUIRED, "[oauth_invalid_grant] gone")
    assert sink.writes[-1] == (
        MailboxStatus.REAUTH_REQUIRED,
        "folder INBOX: [oauth_invalid_grant] gone; folder role:sent: [folder_not_found] no sent folder",
    )
    await _say(folders, "INBOX", MailboxStatus.CONNECTED)
    await _say(folders, "role:sent", MailboxStatus.CONNECTED)
    assert sink.writes[-1] == (MailboxStatus.CONNECTED, None)


async def test_one_folder_records_its_words_unchanged() -> None:
    sink = Recorded()
    folders = MailboxFolders(sink, [WatchedFolder("INBOX")])  # type: ignore[arg-type]
    await _say(folders, "INBOX", MailboxStatus.ERROR, "[timeout] slow")
    await _say(folders, "INBOX", MailboxStatus.ERROR, "[timeout] slow")  # an error counts each time
    assert sink.writes == [(MailboxStatus.ERROR, "[timeout] slow")] * 2
