"""The flat sets in the order the twilight sky allows.

At dusk the sky darkens, so the sets that need the most light go first: narrowband, then B, G, R,
then filters this module does not know, then L / clear / luminance (and no filter); within a filter
the smaller binning first (it needs more light per pixel). At dawn the sky brightens: the reverse.
``flats.filter_order`` (the dusk order) overrides the built-in ranks for the names it lists; names it
does not list follow them in the built-in order. Pure.
"""

from __future__ import annotations

import re

from .model import FlatSet

DIRECTIONS = ("dusk", "dawn")

# Names (lower case, letters and digits only) and their rank in the dusk order; 0 goes first.
NARROWBAND = ("ha", "halpha", "hydrogenalpha", "hb", "hbeta", "oiii", "o3", "sii", "s2", "nii", "n2", "hei",
              "heii", "ar", "lextreme", "lenhance", "lultimate", "duoband", "triband", "quadband")
_BROAD = {
    "u": 1, "uv": 1,
    "b": 2, "blue": 2,
    "g": 3, "green": 3, "v": 3,
    "r": 4, "red": 4,
    "l": 6, "lum": 6, "luminance": 6, "clear": 6, "c": 6, "cl": 6, "none": 6, "uvir": 6, "uvircut": 6,
    "ircut": 6, "lpro": 6,
}
UNKNOWN_RANK = 5
NO_FILTER_RANK = 6
_NARROW_WIDTH = re.compile(r"\d+(\.\d+)?nm$")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9.]", "", name.lower())


def filter_rank(name: str | None, narrowband: list[str] | None = None) -> int:
    """The built-in dusk rank of a filter name: 0 narrowband .. 6 luminance / clear / no filter."""
    if not name:
        return NO_FILTER_RANK
    norm = _norm(name)
    narrow = {_norm(n) for n in (narrowband if narrowband is not None else NARROWBAND)}
    bare = _NARROW_WIDTH.sub("", norm).replace(".", "")  # "Ha 7nm" -> "ha"
    if bare in narrow or norm in narrow:
        return 0
    if narrowband is None and _NARROW_WIDTH.search(norm):  # any "... 3nm" filter is narrowband
        return 0
    return _BROAD.get(bare, UNKNOWN_RANK)


def order_sets(sets: list[FlatSet], direction: str, filter_order: list[str] | None = None,
               narrowband: list[str] | None = None) -> list[FlatSet]:
    """``sets`` in the order to take them: dusk the most light first, dawn the reverse.

    ``filter_order``: the dusk order of filter names (case-insensitive), overriding the built-in
    ranks; ``narrowband``: the names counted as narrowband (default ``NARROWBAND``)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"flats are taken at dusk or dawn, not {direction!r}")
    listed = {}
    for i, name in enumerate(filter_order or []):
        listed.setdefault(str(name).casefold(), i)
    first_seen: dict[str | None, int] = {}
    for i, fset in enumerate(sets):
        first_seen.setdefault(fset.filter, i)

    def key(item):
        i, fset = item
        name = (fset.filter or "").casefold()
        if name in listed:
            group = (0, listed[name], 0)
        else:
            group = (1, filter_rank(fset.filter, narrowband), first_seen[fset.filter])
        return group, fset.filter or "", fset.binning, i

    dusk = [fset for _, fset in sorted(enumerate(sets), key=key)]
    return dusk if direction == "dusk" else dusk[::-1]
