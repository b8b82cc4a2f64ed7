"""When the night raises an alarm of its own: it ended early, or it is stuck. Pure: snapshots and times in.

- **ended early**: the night enters ``parking`` (its end) from a state that was not ending already,
  and not because the sequence finished, someone stopped it by hand (`indisync stop`), or the
  window closed (its end reached, or the next frame would end past it). What is left: a failed
  slew or flip, a failed centring with acquire.on_failure: stop, a state past its deadline, an
  unknown saved state.
- **stuck**: the night is in a state with the mount out (``ACTIVE``: slewing ... flipping) inside its
  window, and neither its state changed nor a frame was written for ``alerts.night_stuck_s`` plus the
  length of the frame under way (``next_duration``). Frames that keep failing (each tried again after
  safety.frame_retry without leaving ``imaging``) count as stuck too; a hung executor loop as well,
  since the check runs on a thread of its own (indisync.node.alarm_watch). Sky flats (dusk_flats,
  dawn_flats) write no frame of the sequence for up to their whole interval: they are bounded by it
  and by their own deadline, never called stuck here.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..alerts import Alarm
from ..alerts import causes
from .state import ACTIVE, END_STATES, FLATS_STATES, State


def ended_early(previous, new, now: float, stopped_by_hand: bool) -> Alarm | None:
    """The alarm for the move ``previous`` -> ``new`` (Snapshots) if it ends the night early."""
    if new.state != State.PARKING.value or previous is None or previous.state == new.state:
        return None
    if previous.state in {s.value for s in END_STATES} or previous.state == "restarting":
        return None
    if new.finished or stopped_by_hand:
        return None
    if new.window_end is not None and now + max(0.0, new.next_duration) >= new.window_end:
        return None  # dawn / night.end_at: the window has closed or the next frame would not fit
    end = None if new.window_end is None else _utc(new.window_end)
    return causes.night_ended_early(new.reason, end)


def stuck(snapshot, now: float, last_progress: float, stuck_s: float) -> Alarm | None:
    """The alarm when ``snapshot`` has stood still too long; ``last_progress``: when the last frame was
    written or the state changed (epoch s, as ``now``)."""
    if snapshot is None or snapshot.state not in {s.value for s in ACTIVE - FLATS_STATES}:
        return None
    if snapshot.window_end is not None and now >= snapshot.window_end:
        return None  # past the window the machine parks on its own (I3)
    frame = max(0.0, snapshot.next_duration or 0.0)
    still = now - max(snapshot.since, last_progress)
    if still <= stuck_s + frame:
        return None
    return causes.night_stuck(snapshot.state, still / 60.0, frame / 60.0)


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
