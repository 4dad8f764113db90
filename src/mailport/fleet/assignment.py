"""Which worker watches which mailbox: bounded-load weighted rendezvous hashing, pure.

Every worker computes the same map from the same rows (the active mailboxes' ids and the live,
active watcher workers with their weights), with no coordination: mailboxes are taken in the
order of a stable hash of their id; each goes to its highest-scoring worker that still has room.
A worker's score for a mailbox is ``-w / ln(u)`` with ``u = hash(worker, mailbox)`` in (0, 1)
(weighted rendezvous: a worker of weight 2 wins twice as often); its room is
``ceil(1.05 · N · w / Σw)``. The room caps every worker at 5 % (+1) over its share, whatever
the hashes; the hashes alone keep the lower side as close (binomially: within 2–3 σ, which is
under 5 % of a share from a few hundred mailboxes per worker up, and a mailbox or two below
that). A join moves about the newcomer's share, a leave the leaver's share, plus the few
mailboxes pushed on by a full worker.

Why not a library: the few consistent-hashing packages do not bound the load, and this is
thirty lines. Scores are cached per (mailbox, worker), so recomputing after a change costs a
dictionary walk, not 30,000 hashes (counted in the tests, timed by ``bench/assignment.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from hashlib import blake2b

HEADROOM = 1.05  # a worker takes at most 5 % over its weighted share
_SCALE = float(1 << 64)


def _unit(key: bytes) -> float:
    """A stable hash of ``key`` as a float strictly inside (0, 1)."""
    value = int.from_bytes(blake2b(key, digest_size=8).digest(), "big")
    return (value + 0.5) / _SCALE


def score(worker: str, mailbox: str, weight: float) -> float:
    """The worker's rendezvous score for the mailbox: ``-w / ln(u)`` (higher wins)."""
    return -weight / math.log(_unit(f"{worker}\x1f{mailbox}".encode()))


def order_key(mailbox: str) -> int:
    """The stable order in which mailboxes pick their worker."""
    return int.from_bytes(blake2b(mailbox.encode(), digest_size=8, person=b"mp-order").digest(), "big")


def capacity(mailboxes: int, weight: float, total_weight: float) -> int:
    """A worker's room: ``ceil(1.05 · N · w / Σw)``."""
    if mailboxes <= 0 or total_weight <= 0:
        return 0
    return math.ceil(HEADROOM * mailboxes * weight / total_weight)


class Assigner:
    """Computes the assignment, remembering scores and order keys between calls.

    ``assign`` is pure in its result (the same rows give the same map, cached or not); the cache
    only keeps mailboxes of the latest call, so it never outgrows the mailbox table.
    """

    def __init__(self) -> None:
        # member -> mailbox -> score: no dict per mailbox (every worker holds this for every
        # mailbox of the fleet, not only its own: ~0.3 KiB a mailbox saved, issue 21)
        self._scores: dict[tuple[str, float], dict[str, float]] = {}
        self._order: dict[str, int] = {}
        self._members: tuple[tuple[str, float], ...] = ()
        # for self._members, best worker first; equal rankings share one tuple
        self._ranks: dict[str, tuple[str, ...]] = {}

    def assign(self, mailboxes: Iterable[str], workers: Mapping[str, float]) -> dict[str, str]:
        """Mailbox id → worker id, over ``workers`` (id → weight, the active ones only)."""
        members = tuple(sorted((w, float(weight)) for w, weight in workers.items() if weight > 0))
        ids = set(mailboxes)
        if not members or not ids:
            self._scores, self._order, self._ranks = {}, {}, {}
            return {}
        total = sum(weight for _, weight in members)
        room = {w: capacity(len(ids), weight, total) for w, weight in members}
        same = members == self._members
        old_order, old_ranks = self._order, self._ranks
        known = [self._scores.get(m, {}) for m in members]
        scores: dict[tuple[str, float], dict[str, float]] = {m: {} for m in members}
        columns = [scores[m] for m in members]
        order: dict[str, int] = {}
        ranks: dict[str, tuple[str, ...]] = {}
        shared: dict[tuple[str, ...], tuple[str, ...]] = {}
        for mailbox in ids:
            key = old_order.get(mailbox)
            order[mailbox] = order_key(mailbox) if key is None else key
            rank = old_ranks.get(mailbox) if same else None
            mine: list[tuple[tuple[str, float], float]] = []
            for member, old, column in zip(members, known, columns, strict=True):
                value = old.get(mailbox) or score(member[0], mailbox, member[1])
                column[mailbox] = value
                mine.append((member, value))
            if rank is None:
                rank = tuple(m[0] for m, _ in sorted(mine, key=lambda item: (-item[1], item[0][0])))
            ranks[mailbox] = shared.setdefault(rank, rank)
        result: dict[str, str] = {}
        for mailbox in sorted(ids, key=lambda m: (order[m], m)):
            for worker in ranks[mailbox]:
                if room[worker] > 0:
                    room[worker] -= 1
                    result[mailbox] = worker
                    break
        self._fill_up(result, members, total, len(ids), scores)
        self._scores, self._order, self._ranks, self._members = scores, order, ranks, members
        return result

    @staticmethod
    def _fill_up(
        result: dict[str, str],
        members: tuple[tuple[str, float], ...],
        total: float,
        n: int,
        scores: Mapping[tuple[str, float], Mapping[str, float]],
    ) -> None:
        """Bring a worker the hashes left under ``0.95 · share - 1`` up to it, taking the
        mailboxes it scores best from workers that stay above theirs (rare: a few workers, few
        mailboxes each; the room already bounds the upper side)."""
        counts = dict.fromkeys((w for w, _ in members), 0)
        for worker in result.values():
            counts[worker] += 1
        share = {w: n * weight / total for w, weight in members}
        floor = {w: math.ceil((2 - HEADROOM) * share[w] - 1) for w, _ in members}
        for member in members:
            worker = member[0]
            if counts[worker] >= floor[worker]:
                continue
            candidates = sorted(
                (m for m, owner in result.items() if owner != worker),
                key=lambda m: (-scores[member][m], m),
            )
            for mailbox in candidates:
                if counts[worker] >= floor[worker]:
                    break
                donor = result[mailbox]
                if counts[donor] - 1 < floor[donor] or counts[donor] / share[donor] <= 1:
                    continue  # it would fall under its own bound, or is not above its share
                result[mailbox] = worker
                counts[donor] -= 1
                counts[worker] += 1

    def mine(self, mailboxes: Iterable[str], workers: Mapping[str, float], worker: str) -> set[str]:
        """The mailboxes ``worker`` wins."""
        return {m for m, w in self.assign(mailboxes, workers).items() if w == worker}


def assign(mailboxes: Iterable[str], workers: Mapping[str, float]) -> dict[str, str]:
    """Mailbox id → worker id (no cache; see :class:`Assigner` for repeated calls)."""
    return Assigner().assign(mailboxes, workers)


__all__ = ["HEADROOM", "Assigner", "assign", "capacity", "order_key", "score"]
