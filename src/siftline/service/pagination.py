"""Pages of an execution's ranked results: offset, cursor or keyset.

Execution is deterministic (ties broken by document id), so for an unchanged collection the same
request ranks the same way and pages neither repeat nor skip documents. A cursor carries the next
offset and a fingerprint of the query, so it cannot be used with another query.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from siftline.errors import BadRequestError, ValidationError
from siftline.pipeline.candidates import Candidate, rank_key

MAX_PAGE = 500
MAX_PAGE_NUMBER = 1_000_000
PAGINATION_KEYS = {  # what each method reads (the SDK's OffsetPaginationParams, Cursor…, Keyset…)
    "offset": frozenset({"method", "page_size", "page_number"}),
    "cursor": frozenset({"method", "limit", "cursor"}),
    "keyset": frozenset({"method", "limit", "after"}),
}
DEFAULT_PAGE = 10


@dataclass(frozen=True)
class PageRequest:
    method: str  # offset | cursor | keyset
    size: int
    page_number: int = 1
    cursor: str | None = None
    after: dict[str, Any] | None = None


def _size(value: Any, loc: list[str | int]) -> int:
    if value is None:
        return DEFAULT_PAGE
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise ValidationError.at(loc, f"page size is an integer from 1 to {MAX_PAGE}")
    return value


def parse_page(body: dict[str, Any]) -> PageRequest:
    raw = body.get("pagination")
    if raw is None:
        size = body.get("limit") if body.get("limit") is not None else body.get("page_size")
        return PageRequest("offset", _size(size, ["body", "limit"]))
    if not isinstance(raw, dict):
        raise ValidationError.at(["body", "pagination"], "pagination is {method: offset|cursor|keyset, …}")
    method = raw.get("method") or "offset"
    loc: list[str | int] = ["body", "pagination"]
    keys = PAGINATION_KEYS.get(method)
    unknown = sorted(k for k, v in raw.items() if v is not None and keys is not None and k not in keys)
    if unknown:  # a key the method does not read would be ignored: say so instead
        raise ValidationError.at(
            [*loc, unknown[0]],
            f"{method} pagination takes {', '.join(sorted(keys or ()))}, not {', '.join(unknown)}",
        )
    if method == "offset":
        number = raw.get("page_number", 1)
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_PAGE_NUMBER:
            raise ValidationError.at(
                [*loc, "page_number"], f"page_number is an integer from 1 to {MAX_PAGE_NUMBER:,}"
            )
        return PageRequest("offset", _size(raw.get("page_size"), [*loc, "page_size"]), page_number=number)
    if method == "cursor":
        cursor = raw.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise ValidationError.at([*loc, "cursor"], "cursor is the string of a previous response")
        return PageRequest("cursor", _size(raw.get("limit"), [*loc, "limit"]), cursor=cursor)
    if method == "keyset":
        after = raw.get("after")
        if after is not None and (not isinstance(after, dict) or "document_id" not in after):
            raise ValidationError.at(
                [*loc, "after"], "after is the previous page's next_cursor: {score, document_id}"
            )
        return PageRequest("keyset", _size(raw.get("limit"), [*loc, "limit"]), after=after)
    raise ValidationError.at([*loc, "method"], "method is offset, cursor or keyset")


def _encode(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, fingerprint: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = data["o"]
        if type(offset) is not int or offset < 0 or data.get("f") != fingerprint:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise BadRequestError(
            "The cursor is not valid for this query: pass pagination.next_cursor of the previous page with the "
            "same inputs and filters."
        ) from exc


def page_window(page: PageRequest, fingerprint: str) -> tuple[int, int] | None:
    """``[start, end)`` of the final list this request returns, when known before the run (offset, or a
    valid cursor); None for keyset pages (their start depends on the scores)."""
    if page.method == "offset":
        start = (page.page_number - 1) * page.size
    elif page.method == "cursor":
        try:
            start = _decode_cursor(page.cursor, fingerprint) if page.cursor else 0
        except BadRequestError:
            return None
    else:
        return None
    return start, start + page.size


def _marker(c: Candidate) -> dict[str, Any]:
    return {"score": c.score, "document_id": c.document_id, "collection_id": c.collection_id}


def _keyset_start(results: list[Candidate], after: dict[str, Any]) -> int:
    for i, c in enumerate(results):
        if c.document_id == after["document_id"] and after.get("collection_id") in (None, c.collection_id):
            return i + 1
    score = after.get("score")
    if not isinstance(score, int | float):
        return len(results)
    key = (-float(score), str(after["document_id"]), str(after.get("collection_id") or ""))
    return next((i for i, c in enumerate(results) if rank_key(c) > key), len(results))


def paginate(
    results: list[Candidate], page: PageRequest, fingerprint: str
) -> tuple[list[Candidate], dict[str, Any]]:
    """The page of ``results`` and its pagination block (every method reports total and returned)."""
    total = len(results)
    if page.method == "offset":
        start = (page.page_number - 1) * page.size
        chunk = results[start : start + page.size]
        return chunk, {
            "method": "offset",
            "page_number": page.page_number,
            "page_size": page.size,
            "limit": page.size,
            "offset": start,
            "total": total,
            "returned": len(chunk),
            "has_next": start + page.size < total,
            "has_previous": start > 0,
        }
    if page.method == "cursor":
        start = _decode_cursor(page.cursor, fingerprint) if page.cursor else 0
        chunk = results[start : start + page.size]
        has_next = start + page.size < total
        next_cursor = _encode({"o": start + page.size, "f": fingerprint}) if has_next else None
        return chunk, {
            "method": "cursor",
            "cursor": next_cursor,
            "next_cursor": next_cursor,
            "limit": page.size,
            "page_size": page.size,
            "total": total,
            "returned": len(chunk),
            "has_next": has_next,
        }
    start = _keyset_start(results, page.after) if page.after else 0
    chunk = results[start : start + page.size]
    has_next = start + page.size < total
    return chunk, {
        "method": "keyset",
        "limit": page.size,
        "next_cursor": _marker(chunk[-1]) if has_next and chunk else None,
        "total": total,
        "returned": len(chunk),
        "has_next": has_next,
    }
