"""`indisync filters`: the filter wheel's slots as `N NAME`, from its FILTER_NAME property."""

from __future__ import annotations


HELP = "print the filter wheel's slots, one `N NAME` per line"


def add_arguments(parser) -> None:
    pass


def run(args, cfg) -> int:
    # Heavy modules load here, not at import: `indisync --help` imports every command (issue 13).
    from ..devices.session import open_devices

    with open_devices(cfg.indi, need=("filter_wheel",), want=()) as devices:
        for slot, name in enumerate(devices.filter_wheel.names, start=1):
            print(f"{slot} {name}")
    return 0
