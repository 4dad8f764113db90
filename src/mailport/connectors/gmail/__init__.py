"""The Gmail API connector (``gmail_api``): a small typed client (:mod:`.client`, :mod:`.models`),
Cloud Pub/Sub pulling (:mod:`.pubsub`), and the connector built on them."""

from mailport.connectors.gmail.client import BATCH_LIMIT, UPLOAD_THRESHOLD, GmailClient
from mailport.connectors.gmail.models import (
    Draft,
    DraftId,
    DraftList,
    GmailMessage,
    GmailThread,
    HistoryExpiredError,
    HistoryMessage,
    HistoryPage,
    HistoryRecord,
    Label,
    LabelChange,
    MessageId,
    MessageList,
    Profile,
    Watch,
)
from mailport.connectors.gmail.pubsub import (
    PubSubClient,
    ReceivedMessage,
    ServiceAccountKey,
    ServiceAccountTokens,
)

__all__ = [
    "BATCH_LIMIT",
    "UPLOAD_THRESHOLD",
    "Draft",
    "DraftId",
    "DraftList",
    "GmailClient",
    "GmailMessage",
    "GmailThread",
    "HistoryExpiredError",
    "HistoryMessage",
    "HistoryPage",
    "HistoryRecord",
    "Label",
    "LabelChange",
    "MessageId",
    "MessageList",
    "Profile",
    "PubSubClient",
    "ReceivedMessage",
    "ServiceAccountKey",
    "ServiceAccountTokens",
    "Watch",
]
