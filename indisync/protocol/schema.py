"""The wire's value checks: one validator per kind of JSON value, and ``obj`` for an object of
named fields. Shared by the message schemas (messages.py) and the typed command contracts
(indisync/contracts.py), so both check a field the same way.

Each validator ``check(value, where)`` returns the value (numbers as float, arrays as tuples,
defaults filled in for missing optional fields) or raises ProtocolError naming ``where``, the
value and what is allowed. Anything that could become part of a file path (filter names,
targets, suffixes, file names) must pass ``safe_name``.

Pure: the standard library, errors and topics only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from ..errors import ProtocolError
from . import topics

MAX_EXPOSURE_S = 36_000.0  # 10 h: longer than any night's single frame
MAX_POSITION = 10**9  # focuser steps, either sign
FRAME_TYPES = ("light", "dark", "flat", "bias")

Validator = Callable[[Any, str], Any]
MISSING = object()  # Field.default of a required field

# Every pattern ends in \Z, not $: '$' also matches before a trailing newline, which let "M42\n" through.
IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
# Letters, digits, space, . _ + -; starts with a letter, digit or '_'; never '..', '/', '\\'.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9 ._+-]{0,63}\Z")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|\+00:00)\Z")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_RUN = re.compile(r"[\x00-\x1f\x7f]+")


def fit_text(text: str | None, limit: int = 500) -> str:
    """Text fit for a ``text(limit)`` field (a reason, a driver's message): each run of control
    characters (a driver's newline or tab, which the schema refuses) a space, at most ``limit`` characters."""
    return _CONTROL_RUN.sub(" ", text or "").strip()[:limit]


def show(value: Any) -> str:
    """A short, escaped rendering of a wire value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- value validators --------------------------------------------------------------------
def integer(lo: int, hi: int) -> Validator:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"{where}: expected an integer, got {show(value)}")
        if not lo <= value <= hi:
            raise ProtocolError(f"{where}: {value} is out of range; allowed {lo}..{hi}")
        return value

    return check


def number(lo: float, hi: float, lo_open: bool = False) -> Validator:
    def check(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProtocolError(f"{where}: expected a number, got {show(value)}")
        if not (lo < value if lo_open else lo <= value) or not value <= hi:
            low = f"{lo} < x" if lo_open else f"{lo} <= x"
            raise ProtocolError(f"{where}: {value} is out of range; allowed {low} <= {hi}")
        return float(value)

    return check


def text(max_len: int) -> Validator:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise ProtocolError(f"{where}: expected a string, got {show(value)}")
        if len(value) > max_len:
            raise ProtocolError(f"{where}: string of {len(value)} characters; allowed at most {max_len}")
        if CONTROL.search(value):
            raise ProtocolError(f"{where}: control characters are not allowed in {show(value)}")
        return value

    return check


def ident(value: Any, where: str) -> str:
    if not isinstance(value, str) or not IDENT.match(value):
        raise ProtocolError(f"{where}: {show(value)} is not an id; allowed: 1-64 of [A-Za-z0-9_.:-]")
    return value


def node_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not topics.NODE_NAME.match(value):
        raise ProtocolError(f"{where}: {show(value)} is not a node name; allowed: [a-z0-9-]")
    return value


def safe_name(value: Any, where: str) -> str:
    """A name that may become (part of) a file name: no separators, no '..', no leading dot or dash."""
    if not isinstance(value, str) or not SAFE_NAME.match(value) or ".." in value or value.endswith(" "):
        raise ProtocolError(
            f"{where}: {show(value)} is not a safe name; allowed: 1-64 of letters, digits, space, ._+- "
            "starting with a letter, digit or '_', without '..'"
        )
    return value


def one_of(*allowed: str) -> Validator:
    def check(value: Any, where: str) -> str:
        if value not in allowed or not isinstance(value, str):
            raise ProtocolError(f"{where}: {show(value)} is not allowed; allowed: {', '.join(allowed)}")
        return value

    return check


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"{where}: expected true or false, got {show(value)}")
    return value


def timestamp(value: Any, where: str) -> str:
    if not isinstance(value, str) or not TIMESTAMP.match(value):
        raise ProtocolError(f"{where}: {show(value)} is not an ISO-8601 UTC time like 2024-05-01T22:10:03.123Z")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ProtocolError(f"{where}: {show(value)} is not a valid date and time") from None
    return value


def nullable(inner: Validator) -> Validator:
    def check(value: Any, where: str) -> Any:
        return None if value is None else inner(value, where)

    return check


def free_object(max_keys: int) -> Validator:
    """A JSON object of at most ``max_keys`` string keys (free-form results); size is capped by the envelope."""

    def check(value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise ProtocolError(f"{where}: expected an object, got {show(value)}")
        if len(value) > max_keys:
            raise ProtocolError(f"{where}: {len(value)} keys; allowed at most {max_keys}")
        return value

    return check


def mapping(key: Validator, value: Validator, max_keys: int) -> Validator:
    """A JSON object whose keys pass ``key`` and values ``value`` (e.g. node name -> its record)."""

    def check(data: Any, where: str) -> dict:
        if not isinstance(data, dict):
            raise ProtocolError(f"{where}: expected an object, got {show(data)}")
        if len(data) > max_keys:
            raise ProtocolError(f"{where}: {len(data)} keys; allowed at most {max_keys}")
        return {key(k, f"{where} key"): value(v, f"{where}.{k}") for k, v in data.items()}

    return check


def list_of(item: Validator, max_items: int) -> Validator:
    """A JSON array of at most ``max_items`` values that each pass ``item``; returned as a tuple."""

    def check(value: Any, where: str) -> tuple:
        if not isinstance(value, (list, tuple)):
            raise ProtocolError(f"{where}: expected an array, got {show(value)}")
        if len(value) > max_items:
            raise ProtocolError(f"{where}: {len(value)} items; allowed at most {max_items}")
        return tuple(item(v, f"{where}[{i}]") for i, v in enumerate(value))

    return check


def array(*items: Validator) -> Validator:
    """A JSON array of exactly ``len(items)`` values, the i-th passing ``items[i]``; returned as a tuple."""

    def check(value: Any, where: str) -> tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise ProtocolError(f"{where}: expected an array of {len(items)} values, got {show(value)}")
        return tuple(item(v, f"{where}[{i}]") for i, (item, v) in enumerate(zip(items, value)))

    return check


@dataclass(frozen=True)
class Field:
    check: Validator
    default: Any = MISSING  # MISSING: required

    @property
    def required(self) -> bool:
        return self.default is MISSING


def req(check: Validator) -> Field:
    return Field(check)


def opt(check: Validator, default: Any = None) -> Field:
    return Field(nullable(check) if default is None else check, default)


def obj(schema: dict[str, Field]) -> Validator:
    """An object with exactly the fields of ``schema``; unknown fields are refused."""

    def check(value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise ProtocolError(f"{where}: expected an object, got {show(value)}")
        unknown = sorted(set(value) - set(schema))
        if unknown:
            raise ProtocolError(
                f"{where}: unknown field {show(unknown[0])}; allowed: {', '.join(schema) or 'none'}"
            )
        out = {}
        for key, spec in schema.items():
            if key in value:
                out[key] = spec.check(value[key], f"{where}.{key}")
            elif spec.required:
                raise ProtocolError(f"{where}: missing field {key!r}")
            else:
                out[key] = spec.default
        return out

    return check


# -- values more than one schema uses -----------------------------------------------------
POSITION = integer(-MAX_POSITION, MAX_POSITION)  # focuser steps
HFR = number(0, 1000)  # pixels
REASON = text(500)  # why something failed or happened
CELSIUS = number(-273.15, 200.0)
