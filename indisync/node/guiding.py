"""The master's guider in the night's cycle: start (calibrating the first time) and settle, stop for
autofocus and start again on a fresh star, dither between frames, hold exposures while the star is
lost, and tell MQTT about all of it.

Nothing here raises into the master's cycle: a guider that cannot start, dither or stop is logged and
reported (an error on MQTT) and the night goes on unguided, as on_star_lost says; a stuck guide camera
must not end the master.
"""

from __future__ import annotations

import logging
import threading
import time

from ..errors import IndisyncError
from ..guiding.guider import GuideEvent, Guider, GuiderState

log = logging.getLogger(__name__)

STATE_EVERY_S = 2.0  # the guider state is published at most this often (a frame a second is noise)
REACQUIRE_EVERY_S = 60.0  # while paused on a lost star, ask for a new star this often


class MasterGuiding:
    def __init__(self, guider: Guider, master_settings, link, stop_event: threading.Event):
        self.guider = guider
        self.dither_settings = master_settings.dither
        self.on_star_lost = master_settings.on_star_lost
        self.link = link
        self.stop_event = stop_event
        self.frames_since_dither = 0
        self.dithers: list[dict] = []
        self._last_state_publish = 0.0
        self._dithering = False  # the guider also reports settling after a (re)start: not a dither
        guider.add_listener(self._on_event)

    # ---- the cycle -------------------------------------------------------------------------------
    def start(self) -> bool:
        """Start guiding on a fresh star and wait until it settles. False if guiding could not start
        (reported; the caller goes on, per on_star_lost)."""
        try:
            self.guider.start(reacquire=True)
            result = self.guider.wait_settled(self.dither_settings.settle)
        except Exception as exc:  # noqa: BLE001 - any failure to guide is reported, the night goes on
            if not isinstance(exc, IndisyncError):
                log.exception("guiding did not start")
            log.error("guiding did not start: %s", exc)
            self._report(f"guiding did not start: {exc}")
            self._publish_state(force=True)
            return False
        if not result.settled:
            log.warning("guiding started but did not settle within %gs (%s)", self.dither_settings.settle.timeout,
                        result.reason)
        self._publish_state(force=True)
        return True

    def stop(self) -> bool:
        """Stop guiding; never raises. False when the guide loop would not stop (reported: the guider
        emits an "error" event, which goes to MQTT; guiding stays off until it ends)."""
        try:
            stopped = self.guider.stop()
        except Exception as exc:  # noqa: BLE001 - Guider.stop does not raise; a stand-in or a bug might
            log.exception("stopping the guider failed")
            self._report(f"guider did not stop: {exc}")
            stopped = False
        self._publish_state(force=True)
        return stopped is not False

    def wait_until_guiding(self, cancel=None) -> None:
        """Hold the next exposure while the guide star is lost (with on_star_lost: pause); ends at
        once when ``cancel`` (anything with is_set(): the night's token) is set."""
        if self.on_star_lost != "pause" or self.guider.state is not GuiderState.LOST:
            return
        log.warning("guide star lost: holding exposures until guiding is back")
        self.link.update_state(phase="waiting")
        last_reacquire = time.monotonic()
        while not self.stop_event.wait(1.0) and not (cancel is not None and cancel.is_set()):
            if self.guider.state is not GuiderState.LOST:
                log.info("guiding is back: exposures resume")
                return
            if time.monotonic() - last_reacquire > REACQUIRE_EVERY_S:
                self.guider.reacquire()
                last_reacquire = time.monotonic()

    def frame_done(self) -> None:
        """After a frame whose slaves have all finished: dither if it is due."""
        every = self.dither_settings.every_frames
        self.frames_since_dither += 1
        if not every or self.frames_since_dither < every or not self.guider.running:
            return
        self.frames_since_dither = 0
        self.link.update_state(phase="dithering")
        self._dithering = True
        try:
            result = self.guider.dither(self.dither_settings.pixels, self.dither_settings.ra_only,
                                        self.dither_settings.settle)
        except Exception as exc:  # noqa: BLE001 - a failed dither is reported; the next frame goes on
            if not isinstance(exc, IndisyncError):
                log.exception("dither failed")
            log.error("dither failed: %s", exc)
            try:
                self.link.event("dither_settled", status="failed", reason=str(exc)[:500])
            except Exception:  # noqa: BLE001
                log.exception("could not report the failed dither")
            return
        finally:
            self._dithering = False
            self.link.update_state(phase="idle")
        self.dithers.append({"settled": result.settled, "seconds": result.seconds})

    # ---- reporting -----------------------------------------------------------------------------
    def _on_event(self, event: GuideEvent) -> None:
        try:
            data = event.data
            if event.kind == "dither":
                self.link.event("dither_started", pixels=float(data.get("pixels", 0.0)))
            elif event.kind in ("settled", "settle_failed") and self._dithering:
                self.link.event("dither_settled", status="ok" if event.kind == "settled" else "failed",
                                seconds=round(float(data.get("seconds") or 0.0), 2),
                                reason=(str(data.get("reason"))[:500] if data.get("reason") else None))
            elif event.kind == "star_lost":
                self.link.error(f"guide star lost ({data.get('frames')} frames)")
            elif event.kind == "error":
                self.link.error(f"guider stopped: {data.get('message')}"[:1000])
            if event.kind != "frame" or time.monotonic() - self._last_state_publish > STATE_EVERY_S:
                self._publish_state(force=event.kind != "frame")
        except Exception:  # noqa: BLE001 - reporting must never break the guide loop
            log.exception("could not report guider event %s", event.kind)

    def _report(self, message: str) -> None:
        try:
            self.link.error(message[:1000])
        except Exception:  # noqa: BLE001 - reporting must not turn one failure into two
            log.exception("could not report: %s", message)

    def _publish_state(self, force: bool = False) -> None:
        self._last_state_publish = time.monotonic()
        try:
            summary = self.guider.stats.summary()
            guiding = {"state": self.guider.state.value,
                       "rms_px": _finite(summary.get("rms_px")), "rms_arcsec": _finite(summary.get("rms_arcsec"))}
            self.link.update_state(guiding=guiding)
        except Exception:  # noqa: BLE001 - a state message lost is logged; guiding and the night go on
            log.exception("could not publish the guider state")


def _finite(value):
    return None if value is None or value != value else round(float(value), 3)
