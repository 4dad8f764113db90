"""The pure parts of mailport.leases: names and holder ids (the database parts are tested in
tests/integration/store/test_leases.py on SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import socket

from mailport import leases


def test_a_lease_is_named_for_its_job() -> None:
    assert leases.name(leases.DISPATCHER) == "dispatcher"
    assert leases.name(leases.WATCHER, "mbx_1") == "watcher:mbx_1"
    assert leases.name(leases.TOKEN_REFRESH, "mbx_1") == "token_refresh:mbx_1"


def test_a_holder_id_names_host_and_process_and_differs_per_part() -> None:
    one, two = leases.new_holder(), leases.new_holder()
    host, pid, nonce = one.split(":")
    assert (host, pid) == (socket.gethostname(), str(os.getpid())) and len(nonce) == 8
    assert one != two


def test_only_a_dead_process_of_this_host_is_dead() -> None:
    assert not leases.holder_is_dead(leases.new_holder())  # this process
    assert leases.holder_is_dead(f"{socket.gethostname()}:999999999:x")  # no such process
    assert not leases.holder_is_dead("elsewhere:999999999:x")  # cannot tell: its lease runs out
    assert not leases.holder_is_dead("migrated")
