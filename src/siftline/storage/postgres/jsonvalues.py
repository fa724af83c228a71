"""Documents' JSON as the PostgreSQL backend stores it, so that SQL compares exactly like Python.

``siftline.filters.evaluate`` (the reference) compares numbers by their exact values (an ``int`` against a
``float`` too) and strings by code point, case-insensitively through ``str.casefold``. PostgreSQL's
``jsonb`` keeps numbers as exact decimals, and with ``COLLATE "C"`` orders text by code point; so:

- :func:`exact_json` writes every float as the exact decimal of its binary value (``0.1`` is
  ``0.1000000000000000055511151231257827021181583404541015625``), always with a decimal point, so a
  ``numeric`` comparison in SQL is Python's comparison and the value reads back as the same float (a
  correctly rounded parse of its exact decimal). Integers are written as they are, of any size. The
  cost is length: a float takes up to ~20 characters more than its shortest form (tiny ones more).
- :func:`folded` is the same value with every string case-folded by Python (keys untouched): stored
  beside the document, it answers case-insensitive conditions exactly, where PostgreSQL's ``lower`` and
  ``casefold`` depend on the collation provider (``ß`` stays ``ß`` under libc).

``numeric`` has no negative zero: :func:`negative_zeros` lists where a document holds ``-0.0``, the
backend keeps that list beside it and :func:`restore_negative_zeros` puts the sign back on reading.

``jsonb`` orders an object's keys by length, then bytewise, so documents read back with their fields in
that order (JSON objects are unordered; every value is kept). It cannot hold NUL in strings:
:func:`check_storable` says where one is.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from siftline.errors import ValidationError


def exact_number(value: float) -> str:
    """A float as the exact decimal of its binary value, with a decimal point (``2.0`` stays a float)."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a JSON number")
    text = format(Decimal(value), "f")
    return text if "." in text else text + ".0"


def exact_json(value: Any) -> str:
    """JSON text of ``value`` with floats written exactly (see the module docstring)."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, float):
        out.append(exact_number(value))
    elif value is None or isinstance(value, bool | int | str):
        out.append(json.dumps(value, ensure_ascii=False))
    else:
        raise TypeError(f"not a JSON value: {type(value).__name__}")


def negative_zeros(value: Any, path: tuple[str | int, ...] = ()) -> list[list[str | int]]:
    """The paths (keys and list positions) of every ``-0.0`` in ``value``."""
    if isinstance(value, float):
        return [list(path)] if value == 0.0 and math.copysign(1.0, value) < 0 else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in negative_zeros(v, (*path, str(k)))]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in negative_zeros(v, (*path, i))]
    return []


def restore_negative_zeros(value: Any, paths: list[list[str | int]] | None) -> Any:
    """``value`` (as read back) with ``-0.0`` at each of ``paths`` again."""
    for path in paths or ():
        if not path:
            return -0.0
        node = value
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = -0.0
    return value


def folded(value: Any) -> Any:
    """``value`` with every string (not key) case-folded."""
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, dict):
        return {k: folded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [folded(v) for v in value]
    return value


def check_storable(value: Any, loc: list[str | int]) -> None:
    """ValidationError at the first string or key holding NUL (PostgreSQL's jsonb cannot store it)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError.at(loc, "text may not contain the NUL character (\\u0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, [*loc, str(key)])
            check_storable(item, [*loc, str(key)])
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_storable(item, [*loc, i])
