"""Mail sources behind one interface (:class:`Connector`); ``imap`` now, others later."""

from mailport.connectors.base import (
    Change,
    ChangeKind,
    Connector,
    ConnectorHealth,
    Cursor,
    FolderState,
    RemoteMessage,
)
from mailport.connectors.imap import ImapConnector
from mailport.connectors.registry import create, keys, register

__all__ = [
    "Change",
    "ChangeKind",
    "Cursor",
    "FolderState",
    "ImapConnector",
    "Connector",
    "ConnectorHealth",
    "RemoteMessage",
    "create",
    "keys",
    "register",
]
