"""The one module that starts and stops the guider in the night (the master's guider cycle is
indisync.node.guiding.MasterGuiding): start on a fresh star, stop for parking, refocus and the flip,
dither between frames, hold the next frame while the guide star is lost, restart after the guider
was rebuilt on new devices. A guider started by an action whose state was left meanwhile is stopped
again at once."""

from __future__ import annotations

import logging

from ..events import Dithered, GuiderStarted, Refocused

log = logging.getLogger(__name__)


def start(ctx) -> bool:
    guiding = ctx.rig.guiding()
    if guiding is None:
        return True
    ctx.token.check("start guiding")
    ok = guiding.start()
    if ctx.token.is_set():  # the night left the state meanwhile (rain, the window's end): not guiding now
        guiding.stop()
    return bool(ok)


def stop(ctx) -> None:
    guiding = ctx.rig.guiding()
    if guiding is not None:
        guiding.stop()


def start_guider(ctx):
    return GuiderStarted(ok=start(ctx))


def stop_guider(ctx):
    stop(ctx)
    return None


def dither(ctx):
    guiding = ctx.rig.guiding()
    if guiding is not None:
        ctx.token.check("dither")
        guiding.frame_done()  # dithers if due; never while anyone is exposing
    return Dithered()


def refocus(ctx):
    """Every node autofocuses at once (no guiding while the focus moves the stars), then guiding
    starts again on a fresh star, unless the night left refocusing meanwhile."""
    reason = ctx.memo.refocus_reason or "refocus"
    stop(ctx)
    ctx.rig.imaging.refocus_all(reason)
    if not ctx.token.is_set() and not ctx.rig.stop_event.is_set():
        start(ctx)
    return Refocused()


def before_frame(ctx, hold) -> None:
    """Before an exposure: restart a guider rebuilt after a reconnect; hold while the star is lost
    (on_star_lost: pause), until it is back or ``hold`` is set (the token cancelled: the window's
    end, rain; or `indisync stop`)."""
    guiding = ctx.rig.guiding()
    if guiding is None:
        return
    if ctx.rig.imaging.guider_rebuilt():
        log.info("restarting guiding after the indiserver reconnect")
        start(ctx)  # reports its own failure; the frame goes on (as on_star_lost says)
    guiding.wait_until_guiding(cancel=hold)
