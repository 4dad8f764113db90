"""The Graph sync bed's fixtures (:mod:`tests.integration.graph.sync_bed`)."""

from tests.integration.graph.sync_bed import configure, sync_bed, sync_bed_fast_poll

__all__ = ["configure", "sync_bed", "sync_bed_fast_poll"]
