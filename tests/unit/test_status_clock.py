"""`indisync status` shows each slave's clock offset to the master (issue 13.4)."""

from __future__ import annotations

from indisync.commands.status import node_row, render_table
from indisync.protocol.registry import NodeInfo


def row(name, role, offset=None, rtt=None):
    state = {"role": role, "phase": "idle", "frames": 0, "version": "0", "clock_offset_s": offset, "clock_rtt_s": rtt}
    return node_row(NodeInfo(name, status="online", state=state, last_heartbeat=0.0, alive=True), 8.0, 1.0)


def test_status_has_a_clock_column_in_ms_with_a_mark_past_100ms():
    rows = [row("master", "master"), row("slave1", "slave", 0.2506, 0.002), row("slave2", "slave", -0.004, 0.002),
            row("slave3", "slave")]
    assert rows[1]["clock_offset_s"] == 0.2506 and rows[1]["clock_rtt_s"] == 0.002
    lines = render_table(rows).splitlines()
    header = lines[0].split()
    col = header.index("CLOCK")
    cells = {line.split()[0]: line.split()[col] for line in lines[1:]}
    assert cells == {"master": "ref", "slave1": "+251ms!", "slave2": "-4ms", "slave3": "-"}


def test_a_clock_offset_under_half_a_millisecond_is_plus_zero_not_minus_zero():
    lines = render_table([row("slave1", "slave", -0.0001, 0.002), row("slave2", "slave", 0.0004, 0.002)]).splitlines()
    col = lines[0].split().index("CLOCK")
    assert [line.split()[col] for line in lines[1:]] == ["+0ms", "+0ms"]
