"""A throw-away Dovecot that takes 1,000+ concurrent connections, for the benchmarks that
hold that many (``imap_idle_memory.py``, ``watchers.py``).

Dovecot's defaults stop far below that; the limits are the ones PERF-NOTES measured with
("Dovecot limits for 1,000+ connections"). Only the idle check interval differs between the
benchmarks, so it is the one parameter.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.mailstack.dovecot import Dovecot


def many_connections_config(*, idle_check_interval: str) -> str:
    """``extra_config`` for :class:`Dovecot`: raised process, client and memory limits.

    ``idle_check_interval`` matters beyond ~128 IDLE sessions, where Dovecot runs out of
    inotify instances here and falls back to checking the mailbox at that interval.
    """
    return f"""
# bench/_dovecot.py: limits for 1,000+ concurrent connections (PERF-NOTES)
default_process_limit = 200
default_client_limit = 5000
default_vsz_limit = 1G
mailbox_idle_check_interval = {idle_check_interval}
service imap-login {{
  service_count = 0
  client_limit = 2000
  process_min_avail = 2
  process_limit = 8
  vsz_limit = 1G
}}
service imap {{
  client_limit = 1
  process_limit = 3000
}}
protocol imap {{
  mail_max_userip_connections = 5000
}}
"""


@contextmanager
def many_connections_dovecot(prefix: str, *, idle_check_interval: str) -> Iterator[tuple[Dovecot, Path]]:
    """A started Dovecot and the temporary directory it lives in (also free for the caller's
    files); both are gone afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    config = many_connections_config(idle_check_interval=idle_check_interval)
    dovecot = Dovecot(root / "dovecot", extra_config=config)
    try:
        dovecot.start()
        yield dovecot, root
    finally:
        dovecot.stop(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
