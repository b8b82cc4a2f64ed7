"""`indisync` command line. Each subcommand lives in indisync/commands/<name>.py and exposes
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args, cfg) -> int`` (the exit code).

Every subcommand takes ``--config FILE`` (defaults apply without it) and ``--indi HOST:PORT``
overriding the config's INDI address.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import sys

from .config import load_config, parse_hostport
from .errors import IndisyncError

# name -> module under indisync.commands; a module that fails to import is reported, not hidden.
COMMANDS = [
    "filters",
    "expose",
    "focus",
    "run",
    "demo",
    "status",
    "guide",
    "night",
    "targets",
    "plan",
    "stop",
    "solve",
    "center",
    "record",
    "report",
    "dashboard",
    "guard",
    "alert-test",
    "flats",
    "darks",
]
# commands that are not a module of their own: name -> "module:attribute" (an object with HELP,
# add_arguments and run, as a module has)
COMMAND_TARGETS = {"flats": "calib:flats", "darks": "calib:darks"}


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="indisync", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name in COMMANDS:
        module_name, _, attribute = COMMAND_TARGETS.get(name, name.replace("-", "_")).partition(":")
        module = importlib.import_module(f"indisync.commands.{module_name}")
        if attribute:
            module = getattr(module, attribute)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument("--config", metavar="FILE", help="YAML config file (defaults apply without it)")
        p.add_argument("--indi", metavar="HOST:PORT", help="INDI server address, overriding the config")
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        module.add_arguments(p)
        modules[name] = module
    return parser, modules


def _version() -> str:
    from . import __version__

    return f"indisync {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        cfg = load_config(args.config)
        if args.indi:
            host, port = parse_hostport(args.indi, cfg.indi.port)
            cfg = cfg.replace(indi=dataclasses.replace(cfg.indi, host=host, port=port))
        return int(modules[args.command].run(args, cfg) or 0)
    except IndisyncError as exc:
        print(f"indisync {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"indisync {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
