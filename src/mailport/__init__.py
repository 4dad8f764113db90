"""mailport: connect any mailbox to your application.

The public library API is listed in ``__all__``; everything else is internal.
"""

from mailport.config import Settings
from mailport.errors import MailportError

__version__ = "0.1.0"

__all__ = ["MailportError", "Settings", "__version__"]
