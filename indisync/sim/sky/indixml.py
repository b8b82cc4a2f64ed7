"""The part of INDI's driver protocol the sky driver speaks, over stdin/stdout as indiserver runs it.

A driver answers ``<getProperties>`` with a ``def*Vector`` per property, takes ``new*Vector``
requests, and sends ``set*Vector`` updates (BLOBs base64 in ``<oneBLOB size=.. format=..>``) and
``<message>``. indiserver 1.9.9 runs any executable as a driver, routes by the ``device``
attribute, and keeps BLOBs from clients that did not ask for them (``enableBLOB`` is its business).

(We checked indipydriver 3.1.2, the maintained library: it speaks the same over stdin/stdout and
would run under indiserver, but it is asyncio-only and a new pinned dependency for ~150 lines.)
"""

from __future__ import annotations

import base64
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

STATES = ("Idle", "Ok", "Busy", "Alert")
KINDS = ("Number", "Switch", "Text", "Light", "BLOB")


@dataclass
class Element:
    name: str
    label: str
    value: object = None  # float (Number), bool (Switch), str (Text, Light state), bytes (BLOB)
    fmt: str = "%g"
    min: float = 0.0
    max: float = 0.0
    step: float = 0.0
    blob_format: str = ".fits"


@dataclass
class Vector:
    kind: str  # one of KINDS
    device: str
    name: str
    label: str
    group: str
    elements: dict[str, Element]
    perm: str = "rw"
    state: str = "Idle"
    rule: str = "OneOfMany"  # switches only
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown vector kind {self.kind!r}; allowed: {', '.join(KINDS)}")

    def __getitem__(self, name: str):
        return self.elements[name].value

    def __setitem__(self, name: str, value) -> None:
        self.elements[name].value = value

    def values(self) -> dict[str, object]:
        return {k: e.value for k, e in self.elements.items()}

    def on(self) -> list[str]:
        return [k for k, e in self.elements.items() if e.value]

    def _head(self, tag: str, message: str | None, defining: bool) -> str:
        attrs = f" device={quoteattr(self.device)} name={quoteattr(self.name)} state={quoteattr(self.state)}"
        if defining:
            attrs += f" label={quoteattr(self.label)} group={quoteattr(self.group)}"
            if self.kind != "Light":
                attrs += f" perm={quoteattr(self.perm)}"
            if self.kind == "Switch":
                attrs += f" rule={quoteattr(self.rule)}"
            if self.kind not in ("Light",):
                attrs += f' timeout="{self.timeout:g}"'
        if self.kind != "Light" and not defining and self.kind != "BLOB":
            attrs += f' timeout="{self.timeout:g}"'
        if message:
            attrs += f" message={quoteattr(message)}"
        return f"<{tag}{attrs}>"

    def _value_text(self, e: Element) -> str:
        if self.kind == "Number":
            v = float(e.value)
            return repr(v) if math.isfinite(v) else "0"
        if self.kind == "Switch":
            return "On" if e.value else "Off"
        if self.kind == "Light":
            return str(e.value or "Idle")
        return escape(str(e.value or ""))

    def def_xml(self, message: str | None = None) -> str:
        tag = f"def{self.kind}Vector"
        parts = [self._head(tag, message, True)]
        for e in self.elements.values():
            if self.kind == "Number":
                parts.append(f"<defNumber name={quoteattr(e.name)} label={quoteattr(e.label)} format={quoteattr(e.fmt)}"
                             f' min="{e.min!r}" max="{e.max!r}" step="{e.step!r}">{self._value_text(e)}</defNumber>')
            elif self.kind == "BLOB":
                parts.append(f"<defBLOB name={quoteattr(e.name)} label={quoteattr(e.label)}/>")
            else:
                parts.append(f"<def{self.kind} name={quoteattr(e.name)} label={quoteattr(e.label)}>"
                             f"{self._value_text(e)}</def{self.kind}>")
        parts.append(f"</{tag}>\n")
        return "".join(parts)

    def set_xml(self, message: str | None = None) -> str:
        tag = f"set{self.kind}Vector"
        parts = [self._head(tag, message, False)]
        for e in self.elements.values():
            if self.kind == "BLOB":
                data = e.value or b""
                parts.append(f"<oneBLOB name={quoteattr(e.name)} size=\"{len(data)}\" format={quoteattr(e.blob_format)}>"
                             f"{base64.b64encode(data).decode('ascii')}</oneBLOB>")
            else:
                parts.append(f"<one{self.kind} name={quoteattr(e.name)}>{self._value_text(e)}</one{self.kind}>")
        parts.append(f"</{tag}>\n")
        return "".join(parts)


def number(device: str, name: str, label: str, group: str, items: list[tuple], perm: str = "rw") -> Vector:
    """items: (name, label, value, min, max, step[, format])."""
    elements = {}
    for it in items:
        n, lab, value, lo, hi, step = it[:6]
        elements[n] = Element(n, lab, float(value), it[6] if len(it) > 6 else "%g", float(lo), float(hi), float(step))
    return Vector("Number", device, name, label, group, elements, perm=perm)


def switch(device: str, name: str, label: str, group: str, items: list[tuple[str, str, bool]],
           rule: str = "OneOfMany", perm: str = "rw") -> Vector:
    return Vector("Switch", device, name, label, group, {n: Element(n, lab, bool(v)) for n, lab, v in items},
                  perm=perm, rule=rule)


def text(device: str, name: str, label: str, group: str, items: list[tuple[str, str, str]], perm: str = "ro") -> Vector:
    return Vector("Text", device, name, label, group, {n: Element(n, lab, v) for n, lab, v in items}, perm=perm)


def blob(device: str, name: str, label: str, group: str, elements: list[tuple[str, str]]) -> Vector:
    return Vector("BLOB", device, name, label, group, {n: Element(n, lab, b"") for n, lab in elements}, perm="ro")


def message_xml(device: str, text_: str) -> str:
    return f"<message device={quoteattr(device)} message={quoteattr(text_)}/>\n"


@dataclass
class Request:
    """One message from indiserver: ``getProperties`` or a ``new*Vector`` with its values."""

    tag: str
    device: str | None
    name: str | None
    values: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str | None:
        """Number, Switch, Text or BLOB for ``new*Vector``; None otherwise."""
        if self.tag.startswith("new") and self.tag.endswith("Vector"):
            return self.tag[3:-6]
        return None


class RequestParser:
    """Feeds bytes from stdin, yields complete top-level requests (anything else is skipped)."""

    def __init__(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._parser.feed("<stream>")
        self._depth = 0

    def feed(self, data: bytes) -> list[Request]:
        self._parser.feed(data.decode("utf-8", errors="replace"))
        out = []
        for event, elem in self._parser.read_events():
            if event == "start":
                self._depth += 1
                continue
            self._depth -= 1
            if self._depth == 1:
                if elem.tag == "getProperties" or (elem.tag.startswith("new") and elem.tag.endswith("Vector")):
                    values = {c.get("name"): (c.text or "").strip() for c in elem}
                    out.append(Request(elem.tag, elem.get("device"), elem.get("name"), values))
                elem.clear()
        return out
