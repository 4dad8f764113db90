"""The outbox tests' fixtures (:mod:`tests.integration.sending.outbox_bed`)."""

from tests.integration.sending.outbox_bed import box, settings

__all__ = ["box", "settings"]
