"""Every alarm indisync raises, built in one place: its cause (the dedupe key), level, title, and a
body that says what happened and what to do. Pure: the night, the nodes and the guard call these.

README's "Alarms" table lists the same causes; keep the two together.
"""

from __future__ import annotations

from .alerter import Alarm


def park_failed(problems: list[str], why: str) -> Alarm:
    """The mount did not park (or no devices to park with): the night tries again every safety.park_retry s."""
    return Alarm("park_failed", "critical", "Mount park failed",
                 f"The mount did not park ({why}): {'; '.join(problems)}. indisync tries again every "
                 "safety.park_retry s. Check the mount and its indiserver now; park it by hand if it stays out "
                 "(rain, daylight).")


def close_failed(problems: list[str], why: str) -> Alarm:
    return Alarm("close_failed", "critical", "Dome close failed",
                 f"The dome did not close ({why}): {'; '.join(problems)}. indisync tries again every "
                 "safety.park_retry s. Check the dome, its power and its indiserver now; close it by hand.")


def node_offline(node: str, seconds: float, night_state: str) -> Alarm:
    return Alarm(f"node_offline:{node}", "warning", f"Node {node} offline",
                 f"{node} has been offline for {seconds / 60:.0f} min while the night is {night_state}: its "
                 "frames are missing. Check that its computer is on and on the network, and its unit "
                 f"(systemctl status indisync@{node}; journalctl -u indisync@{node}).")


def night_ended_early(reason: str, window_end: str | None) -> Alarm:
    until = f" (its window ran until {window_end})" if window_end else ""
    return Alarm("night_ended_early", "warning", "Night ended early",
                 f"The night stopped imaging and is parking{until}: {reason}. Read the master's log "
                 "(journalctl -u indisync@<master>) and fix the cause; `indisync night` starts it again.")


def night_stuck(state: str, minutes: float, frame_minutes: float) -> Alarm:
    return Alarm("night_stuck", "critical", f"Night stuck in {state}",
                 f"The night has been in {state} for {minutes:.0f} min without a new state or a new frame "
                 f"(alerts.night_stuck_s, plus the {frame_minutes:.0f} min frame under way). The mount may be "
                 "out. Look at `indisync status` and the master's log; `indisync stop` parks and ends the night.")


def disk_low_message(free_gb: float, directory: str, min_free_gb: float) -> str:
    """The refusal's reason, as the exposure's reply and event give it."""
    return (f"only {free_gb:.2f} GB free in {directory}, below storage.min_free_gb {min_free_gb:g}: "
            "free space or lower it")


def disk_low(node: str, free_gb: float, directory: str, min_free_gb: float) -> Alarm:
    return Alarm(f"disk_low:{node}", "critical", f"{node}: disk full, frames refused",
                 f"{node} refused a frame: {disk_low_message(free_gb, directory, min_free_gb)}. No file was "
                 "written; every frame is refused until there is room again.")


def clock_offset(node: str, offset_s: float, rtt_s: float | None, warn_s: float) -> Alarm:
    rtt = f" (measured over a {rtt_s * 1000:.0f} ms round trip)" if rtt_s is not None else ""
    return Alarm(f"clock_offset:{node}", "warning", f"{node}: clock {offset_s:+.2f} s off",
                 f"The clock of {node} is {offset_s:+.3f} s off the master's{rtt}, past mqtt.clock_warn "
                 f"{warn_s:g} s: its DATE-OBS is off by as much. Sync it with chrony against the master "
                 "(chronyc tracking; chronyc makestep).")


def night_summary(night: str, nodes: dict, failures: int, report_path: str | None, frames_total: int | None = None,
                  window: str | None = None) -> Alarm:
    """The end-of-night summary (level info). ``nodes``: the report's per-node figures
    (frames_by_filter, shutter_open_pct, autofocus {runs, ok}, failed)."""
    lines = []
    total = 0
    for name, n in sorted(nodes.items()):
        by_filter = n.get("frames_by_filter") or {}
        frames = n.get("frames", sum(by_filter.values()))
        total += frames or 0
        filters = ", ".join(f"{f} {c}" for f, c in by_filter.items()) or "no frames"
        opened = n.get("shutter_open_pct")
        af = n.get("autofocus") or {}
        parts = [f"{name}: {frames} frames ({filters})",
                 f"shutter open {opened:.0f} %" if isinstance(opened, (int, float)) else "shutter open -",
                 f"autofocus {af.get('ok', 0)}/{af.get('runs', 0)} ok"]
        if n.get("failed"):
            parts.append(f"{n['failed']} failed")
        lines.append(", ".join(parts))
    if frames_total is not None and not nodes:
        total = frames_total
        lines.append(f"{frames_total} frames on the master (no night report: record.enabled / record.report off)")
    body = "\n".join(lines + [f"Failures: {failures}" + ("" if failures == 0 else " (see the report)")]
                     + ([f"Window: {window}"] if window else [])
                     + [f"Report: {report_path}" if report_path else "Report: none written"])
    return Alarm(f"night_summary:{night}", "info", f"Night {night}: {total} frames", body)
