"""A record's JSON form and back: `to_json` (dataclasses.asdict, with keyword field names
restored) and `read`, which builds the dataclass and refuses a key it does not have, so that
writer and reader cannot drift apart. A record whose older files spelled it otherwise says how to
read them (an `upgrade(data)` static method, run before the keys are checked)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

JSON_NAMES = {"class_": "class"}  # fields whose JSON key is a Python keyword


def read(cls: type, data: Any) -> Any:
    """Build `cls` (a dataclass, or a typing form over them) from its JSON form."""
    origin, args = typing.get_origin(cls), typing.get_args(cls)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        return read(next(a for a in args if a is not type(None)), data)
    if origin is list:
        return [read(args[0], item) for item in data]
    if origin is dict:
        return {key: read(args[1], value) for key, value in data.items()}
    if not dataclasses.is_dataclass(cls) or isinstance(data, cls):
        return data
    if hasattr(cls, "upgrade"):  # its older files spelled it otherwise
        data = cls.upgrade(data)
    hints = typing.get_type_hints(cls)
    names = {JSON_NAMES.get(f.name, f.name): f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        msg = f"{cls.__name__} has no field(s) {unknown}; valid: {sorted(names)}"
        raise TypeError(msg)
    return cls(**{names[key]: read(hints[names[key]], value) for key, value in data.items()})


def to_json(record: Any) -> Any:
    """The JSON form of a record (dataclasses.asdict, with keyword field names restored)."""
    if dataclasses.is_dataclass(record):
        return {JSON_NAMES.get(f.name, f.name): to_json(getattr(record, f.name))
                for f in dataclasses.fields(record)}
    if isinstance(record, list | tuple):
        return [to_json(item) for item in record]
    if isinstance(record, dict):
        return {key: to_json(value) for key, value in record.items()}
    return record
