"""The message count a connection keeps from EXISTS, EXPUNGE and VANISHED (pure), and the
protocol feeding it every such response, collected by a command or not (on bytes)."""

from __future__ import annotations

import asyncio

from mailport.errors import MailportError
from mailport.imap.counting import MessageCount
from mailport.imap.protocol import ImapProtocol, PendingCommand


def test_growth_is_arrivals_and_expunges_lower_the_count() -> None:
    count = MessageCount()
    count.on_exists(5)  # the SELECT's count: no arrival
    mark = count.mark()
    assert count.arrived_since(mark) == 0
    count.on_exists(7)
    count.on_expunged(1)  # one old message gone, one new arrives: EXISTS stays 7
    count.on_exists(7)
    assert count.exists == 7
    assert count.arrived_since(mark) == 3


def test_counts_that_break_the_rules_answer_no_more() -> None:
    count = MessageCount()
    count.on_exists(5)
    mark = count.mark()
    count.on_exists(3)  # shrank without EXPUNGE (RFC 3501 7.3.1 forbids it)
    count.on_exists(4)
    assert count.arrived_since(mark) is None
    again = count.mark()
    count.on_expunged(9)  # more than there were
    assert count.exists is None and count.arrived_since(again) is None


def test_a_select_and_another_connection_invalidate_a_mark() -> None:
    count, other = MessageCount(), MessageCount()
    count.on_exists(1)
    mark = count.mark()
    other.on_exists(1)
    assert other.arrived_since(mark) is None
    count.reset()
    count.on_exists(40)  # the next mailbox's count, no arrival
    assert count.arrived_since(mark) is None and count.arrived == 0


async def test_the_protocol_counts_collected_and_unsolicited_responses() -> None:
    lost: list[MailportError] = []
    unsolicited: list[bytes] = []
    proto = ImapProtocol(
        max_literal=1 << 20, on_untagged=lambda n, kind, o, r: unsolicited.append(kind), on_lost=lost.append
    )
    proto.data_received(b"* OK ready\r\n")
    proto.data_received(b"* 4 EXISTS\r\n")
    mark = proto.count.mark()
    proto.data_received(b"* 6 EXISTS\r\n* 2 EXPUNGE\r\n* VANISHED 3:4\r\n* VANISHED (EARLIER) 1:9\r\n")
    assert proto.count.exists == 3 and proto.count.arrived_since(mark) == 2
    # an EXPUNGE command collects its EXPUNGE responses: they still count
    loop = asyncio.get_running_loop()
    command = PendingCommand(b"A1", loop.create_future(), frozenset({b"EXPUNGE"}))
    proto.current = command
    proto.data_received(b"* 1 EXPUNGE\r\n* 3 EXISTS\r\nA1 OK done\r\n")
    assert [kind for _, kind, _, _ in command.collected] == [b"EXPUNGE"]
    assert proto.count.exists == 3 and proto.count.arrived_since(mark) == 3
    assert unsolicited == [b"EXISTS", b"EXISTS", b"EXPUNGE", b"VANISHED", b"VANISHED", b"EXISTS"]
    assert not lost
