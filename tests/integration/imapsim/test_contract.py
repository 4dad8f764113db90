"""The connector contract's IMAP tests (tests/connectors/), unchanged, against Dovecot and the
simulator: catch-up, baseline, epochs, refs and push (the paths a watcher takes)."""

from __future__ import annotations

from tests.connectors.test_reading import (  # noqa: F401  (collected here with this directory's harness)
    test_an_epoch_change_is_seen_at_open_and_restart_reads_the_scope_again,
    test_catch_up_yields_new_mail_in_order_in_batches_each_with_the_cursor_after_it,
    test_refs_round_trip_and_name_the_message_the_source_describes,
    test_the_baseline_skips_mail_older_than_since_and_keeps_the_rest,
)
from tests.connectors.test_watching import (  # noqa: F401
    test_watch_yields_after_new_mail_when_pushing_and_after_a_wake_always,
)
