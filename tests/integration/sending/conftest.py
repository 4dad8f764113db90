"""The outbox tests' fixtures (:mod:`tests.integration.sending.outbox_bed`), and the bare Dovecot
servers of the Sent copy and drafts tests (:mod:`tests.integration.sending.copies_bed`; a session
fixture lives here so that every module shares one instance)."""

from tests.integration.sending.copies_bed import bare_dovecots
from tests.integration.sending.outbox_bed import box, settings

__all__ = ["bare_dovecots", "box", "settings"]
