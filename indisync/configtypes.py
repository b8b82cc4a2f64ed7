"""Build typed dataclasses from plain YAML data, with errors that name the key and what is allowed.

Kept apart from config.py so that pure packages (focus/, sequence/, guiding/) can declare their own
settings dataclasses without importing the whole configuration.

A settings dataclass may define ``validate(self) -> None`` raising ``ValueError`` with a sentence
saying what is allowed; the loader reports it against the dataclass's key path.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Union


class ConfigValueError(ValueError):
    """A value at a dotted key path is invalid. ``path`` is e.g. ``focus.step``."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        return f"a list of {_type_name(inner)}"
    if origin is dict:
        k, v = typing.get_args(tp) or (Any, Any)
        return f"a mapping of {_type_name(k)} to {_type_name(v)}"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def coerce(tp: Any, value: Any, path: str) -> Any:
    """Return ``value`` converted to type ``tp`` or raise ConfigValueError naming ``path``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigValueError(path, f"got {value!r}; allowed: {_type_name(tp)}")
    if origin in (Union, types.UnionType):
        errors = []
        for alt in typing.get_args(tp):
            try:
                return coerce(alt, value, path)
            except ConfigValueError as exc:
                errors.append((alt, exc))
        sections = [exc for alt, exc in errors if dataclasses.is_dataclass(alt)]
        if isinstance(value, dict) and len(sections) == 1:
            raise sections[0]  # a section with a bad key inside: say which key, not "got {...}"
        raise ConfigValueError(path, f"got {value!r}; allowed: {_type_name(tp)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigValueError(path, f"got {value!r}; allowed: null")
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigValueError(path, f"got {value!r}; allowed: {_type_name(tp)}")
        return build(tp, value, path)
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise ConfigValueError(path, f"got {value!r}; allowed: {_type_name(tp)}")
        return [coerce(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        kt, vt = typing.get_args(tp) or (Any, Any)
        if not isinstance(value, dict):
            raise ConfigValueError(path, f"got {value!r}; allowed: {_type_name(tp)}")
        return {coerce(kt, k, path): coerce(vt, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigValueError(path, f"got {value!r}; allowed: true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigValueError(path, f"got {value!r}; allowed: an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # YAML's .nan/.inf: "never stale", "never times out" by accident
                raise ConfigValueError(path, f"got {value!r}; allowed: a finite number (not .nan or .inf)")
            return float(value)
        raise ConfigValueError(path, f"got {value!r}; allowed: a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigValueError(path, f"got {value!r}; allowed: a string")
    if isinstance(value, tp):
        return value
    raise ConfigValueError(path, f"got {value!r}; allowed: {_type_name(tp)}")


def build(cls: type, data: dict, path: str = "") -> Any:
    """Build dataclass ``cls`` from mapping ``data``; unknown keys and bad values are errors."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigValueError(
            f"{where}{unknown[0]}",
            f"unknown key; allowed keys{' under ' + path if path else ''}: {', '.join(fields)}",
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = coerce(hints[name], value, f"{path}.{name}" if path else name)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigValueError as exc:
            raise ConfigValueError(f"{path}.{exc.path}" if path and exc.path else (exc.path or path), exc.message) from None
        except ValueError as exc:
            raise ConfigValueError(path, str(exc)) from None
    return obj
