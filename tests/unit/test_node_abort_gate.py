"""The abort gate (indisync.node.abort_gate): an abort that overtakes the exposure or autofocus it
was sent after is not wiped when that command starts; older aborts, and other senders', are."""

import pytest

from indisync.errors import ExposureAborted
from indisync.node.abort_gate import AbortGate


def test_an_abort_sent_after_the_command_but_arriving_first_stops_it_before_it_starts():
    gate = AbortGate()
    gate.abort("master", "2026-12-05T22:00:01.000Z")  # sent a second after the expose below
    with pytest.raises(ExposureAborted, match="before it started"):
        gate.begin("master", "2026-12-05T22:00:00.000Z")
    assert gate.event.is_set()


def test_an_older_abort_or_another_senders_does_not_stop_the_next_command():
    gate = AbortGate()
    gate.abort("master", "2026-12-05T22:00:00.000Z")
    gate.abort("cli", "2026-12-05T23:00:00.000Z")  # another clock: never compared with the master's
    gate.begin("master", "2026-12-05T22:00:05.000Z")
    assert not gate.event.is_set()


def test_an_abort_during_the_command_sets_the_flag_it_polls():
    gate = AbortGate()
    gate.begin("master", "2026-12-05T22:00:00.000Z")
    gate.abort("master", "2026-12-05T22:00:02.000Z")
    assert gate.event.is_set()
    gate.begin("master", "2026-12-05T22:00:03.000Z")  # the next frame starts clean
    assert not gate.event.is_set()
