"""mailport: connect any mailbox to your application.

The public library API is listed in ``__all__``; everything else is internal.
"""

from mailport.config import Settings
from mailport.errors import MailportError

__version__ = "0.1.0"

__all__ = ["MailportError", "Settings", "__version__", "watch"]


def __getattr__(name: str) -> object:
    if name == "watch":  # imported lazily (it pulls in the service graph)
        from mailport.sync.stream import watch

        return watch
    raise AttributeError(name)
