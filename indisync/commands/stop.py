"""`indisync stop`: tell the master to end the night as at dawn — finish the frame under way (or
abort it with --abort), park, warm — and exit."""

from __future__ import annotations

from ..errors import IndisyncError

HELP = "end the night as at dawn: the master finishes (or with --abort aborts) the frame, parks and warms"


def add_arguments(parser) -> None:
    parser.add_argument("--abort", action="store_true", help="abort the frame under way instead of finishing it")
    parser.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker address, overriding the config")
    parser.add_argument("--master", metavar="NAME", help="the master's node name (default: found on the broker)")


def run(args, cfg) -> int:
    from ..contracts import StopArgs
    from .master_link import master_link

    stop = StopArgs(abort=bool(args.abort), reason="indisync stop")
    with master_link(args, cfg, "stop", stop.command) as link:
        master = link.master
        pending = link.send(stop)
        if not pending.finished.wait(stop.reply_timeout()):
            raise IndisyncError(f"the master {master!r} did not answer within {stop.reply_timeout():g} s; is it "
                                "running (indisync status)?")
        reply = pending.reply()
        if not reply.ok:
            raise IndisyncError(f"the master {master!r} refused: {reply.reason}")
        print(f"{master}: ending the night{' (frame aborted)' if args.abort else ''}: park, warm, exit")
        return 0
