"""Dataclasses to and from JSON, driven by their type hints: results files stay typed in code.

``to_json`` turns a dataclass into plain JSON data: tuples become lists, paths strings, enums
their values, and a float that is not finite (NaN, infinity: a figure that could not be
measured) becomes null, since JSON has no spelling for it. ``from_json`` reads that data back
into the dataclass, turning null into NaN wherever the hint says ``float``, so that
``from_json(data).to_json() == data`` for every file ``to_json`` wrote.

A field marked with :data:`OMIT_IF_NONE` is left out of the JSON while it is None (and read
back as None when absent): an object that appears only sometimes, such as a cell's repeats.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

T = TypeVar("T")

# field(metadata=OMIT_IF_NONE): absent from the JSON while the value is None
OMIT_IF_NONE: Mapping[str, bool] = types.MappingProxyType({"omit_if_none": True})


class JsonRecord:
    """Mixin for a dataclass: ``to_json()`` and ``from_json()`` from its fields' type hints."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = to_json(self)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return _load_dataclass(cls, data)


def to_json(value: Any) -> Any:
    """Plain JSON data (dicts, lists, str, int, float, bool, None) for ``value``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (_omitted_if_none(f) and getattr(value, f.name) is None)
        }
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def _omitted_if_none(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("omit_if_none"))


def _load_dataclass(cls: type[T], data: Mapping[str, Any]) -> T:
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{cls.__name__}: {f.name!r} is missing")
            continue
        hint = hints[f.name]
        if _omitted_if_none(f):
            # present means set: a null in it is a figure that could not be measured
            hint = _without_none(hint)
        values[f.name] = _load(hint, data[f.name])
    return cls(**values)


def _without_none(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if _is_union(hint) and len(args) == 1:
        return args[0]
    return hint


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _load(hint: Any, value: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or origin is Literal:
        return value
    if hint is float:
        return math.nan if value is None else value
    if _is_union(hint):
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        # a union of plain values (a table cell) is stored as it is
        return _load(inner[0], value) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint):
        return _load_dataclass(hint, value)  # type: ignore[arg-type]
    if typing.is_typeddict(hint):
        fields = typing.get_type_hints(hint)
        return {key: _load(fields.get(key, Any), item) for key, item in value.items()}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if hint is Path:
        return Path(value)
    if origin is list:
        return [_load(args[0], item) for item in value]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_load(args[0], item) for item in value)
        return tuple(_load(a, item) for a, item in zip(args, value, strict=True))
    if origin in (dict, Mapping):
        return {key: _load(args[1], item) for key, item in value.items()}
    return value
