"""mailport: connect any mailbox to your application.

The public library API is listed in ``__all__``; everything else is internal.
``watch``, ``open``, ``Mailport`` and ``MailboxHandle`` are imported lazily (they pull in the
service graph).
"""

from mailport.config import Settings
from mailport.errors import MailportError

__version__ = "0.1.0"

__all__ = ["MailboxHandle", "Mailport", "MailportError", "Settings", "__version__", "open", "watch"]


def __getattr__(name: str) -> object:
    if name == "watch":
        from mailport.sync.stream import watch

        return watch
    if name in ("open", "Mailport"):
        from mailport import library

        return getattr(library, name)
    if name == "MailboxHandle":
        from mailport.mailboxes.handle import MailboxHandle

        return MailboxHandle
    raise AttributeError(name)
