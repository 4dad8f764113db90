"""Mail sources behind one interface (:class:`MailboxProvider`); ``imap`` now, others later."""

from mailport.providers.base import (
    Change,
    ChangeKind,
    Cursor,
    FolderState,
    MailboxProvider,
    ProviderHealth,
    RemoteMessage,
)
from mailport.providers.imap import ImapProvider
from mailport.providers.registry import create, keys, register

__all__ = [
    "Change",
    "ChangeKind",
    "Cursor",
    "FolderState",
    "ImapProvider",
    "MailboxProvider",
    "ProviderHealth",
    "RemoteMessage",
    "create",
    "keys",
    "register",
]
