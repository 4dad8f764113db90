"""Mail sources behind one interface (:class:`Connector`): ``imap``, ``pop3``, ``gmail_api``, ``graph``."""

from mailport.connectors.base import (
    BaseConnector,
    Batch,
    Change,
    ChangeKind,
    Connector,
    ConnectorHealth,
    Cursor,
    Feature,
    MessageRef,
    PollingConnector,
    RemoteMessage,
    ScopeState,
)
from mailport.connectors.folders import Folder, Role
from mailport.connectors.graph.connector import GraphConnector  # registers graph and its push receiver
from mailport.connectors.imap import ImapConnector
from mailport.connectors.pop3 import Pop3Connector
from mailport.connectors.registry import ConnectorContext, capabilities, create, keys, register

# registers gmail_api (and its push receiver); imported for that effect
from mailport.connectors.gmail import connector as _gmail_connector  # noqa: F401  isort: skip

__all__ = [
    "BaseConnector",
    "Batch",
    "Change",
    "ChangeKind",
    "Connector",
    "ConnectorContext",
    "ConnectorHealth",
    "Cursor",
    "Feature",
    "Folder",
    "GraphConnector",
    "ImapConnector",
    "MessageRef",
    "PollingConnector",
    "Pop3Connector",
    "RemoteMessage",
    "Role",
    "ScopeState",
    "capabilities",
    "create",
    "keys",
    "register",
]
