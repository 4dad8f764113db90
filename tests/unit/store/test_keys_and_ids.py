"""API key material, ids and cursors: pure functions."""

from __future__ import annotations

import time

import pytest

from mailport.errors import InvalidCursorError
from mailport.store.ids import new_id, plausible_id
from mailport.store.pagination import decode_cursor, encode_cursor
from mailport.tenants.keys import generate_api_key, hash_api_key, same_secret, visible_prefix


def test_api_keys_are_random_prefixed_and_hashed():
    keys = {generate_api_key() for _ in range(100)}
    assert len(keys) == 100
    key = keys.pop()
    assert key.startswith("mp_live_") and len(key) >= 48
    assert visible_prefix(key) == key[:12] and len(hash_api_key(key)) == 64
    assert hash_api_key(key) == hash_api_key(key) != hash_api_key(key + "x")
    assert same_secret(key, key) and not same_secret(key, key[:-1])


def test_ids_are_time_ordered_and_shaped():
    first = new_id("mbx")
    time.sleep(0.002)
    second = new_id("mbx")
    assert first < second and first.startswith("mbx_") and len(first) == 30
    assert plausible_id(first) and not plausible_id("mbx_\x00") and not plausible_id("a" * 65)
    assert not plausible_id("") and not plausible_id("../x")


def test_ids_are_ulids_in_crockford_base32():
    """48 bits of milliseconds then 80 random bits, as one 128-bit number in 26 characters."""
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    before = time.time_ns() // 1_000_000
    ids = [new_id("evt") for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for one in ids:
        body = one.removeprefix("evt_")
        assert len(body) == 26 and set(body) <= set(alphabet)
        value = 0
        for char in body:
            value = value << 5 | alphabet.index(char)
        assert value < 1 << 128 and before <= value >> 80 <= after
    low_bits = {int(alphabet.index(one[-1])) & 1 for one in ids}
    assert low_bits == {0, 1}  # the random part reaches the last character


def test_cursors_round_trip_and_refuse_tampering():
    cursor = encode_cursor("mbx_01abc")
    assert decode_cursor(cursor) == "mbx_01abc" and decode_cursor(None) is None and decode_cursor("") is None
    assert "mbx" not in cursor  # opaque
    for bad in ("%%%", "bm9wZQ", encode_cursor("x y"), "dj E6", "\ud800"):
        with pytest.raises(InvalidCursorError) as caught:
            decode_cursor(bad)
        assert caught.value.details["field"] == "cursor"


def test_ids_made_in_a_forked_child_or_another_thread_are_not_the_parents():
    """The random bits are pooled: a forked child and other threads draw their own bytes."""
    import os
    import threading

    new_id("evt")  # the parent's pool holds unused bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.write(write, " ".join(new_id("evt") for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = set(os.read(read, 65536).decode().split())
    os.close(read)
    mine = {new_id("evt") for _ in range(50)}
    from_thread: list[str] = []
    thread = threading.Thread(target=lambda: from_thread.extend(new_id("evt") for _ in range(50)))
    thread.start()
    thread.join()
    random_parts = [{one[-16:] for one in made} for made in (child, mine, set(from_thread))]
    assert all(len(part) == 50 for part in random_parts)
    assert not random_parts[0] & random_parts[1] and not random_parts[1] & random_parts[2]
    assert not random_parts[0] & random_parts[2]
