"""Python values to and from PostgreSQL columns."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson


def _finite(value: Any) -> Any:
    """NaN and ±inf as null, as orjson writes them (JSON has no such numbers; PostgreSQL refuses them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """JSON text for a ``json`` column: orjson, or the standard library (exact) for integers past 64 bits."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        return json.dumps(_finite(value), ensure_ascii=False, default=str, allow_nan=False)


def utc_of(value: datetime) -> datetime:
    """A NOT NULL timestamptz read back, in UTC."""
    return value.astimezone(UTC)


def utc(value: datetime | None) -> datetime | None:
    """A timestamptz read back, in UTC (the SQLite backend's times are UTC too)."""
    return value.astimezone(UTC) if value is not None else None
