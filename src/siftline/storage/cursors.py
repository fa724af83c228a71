"""The opaque cursors of ``list_documents`` pages, the same for every backend."""

from __future__ import annotations

import base64
import json
from typing import Any

from siftline.errors import BadRequestError


def encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


_MAX_CURSOR = 2**62


def decode_cursor(cursor: str, key: str) -> int:
    """The position ``key`` (``r``: last rowid, ``o``: offset) a cursor of ``encode_cursor`` holds."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        value = data[key] if isinstance(data, dict) else None
        if type(value) is not int or not 0 <= value < _MAX_CURSOR:
            raise ValueError
        return value
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise BadRequestError(
            "The cursor is not valid for this request: pass the pagination.next_cursor of the previous "
            "page unchanged, with the same sort."
        ) from exc
