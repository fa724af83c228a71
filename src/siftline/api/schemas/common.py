"""Wire models shared by every route: the error envelope, pagination, list bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    message: str = Field(description="What was wrong and how to fix it.")
    type: str = Field(description="Stable error type, e.g. ValidationError.")
    details: dict[str, Any] | None = Field(
        None, description="For validation errors: `errors`, each bad field."
    )


class ErrorResponse(BaseModel):
    success: bool = False
    status: int
    error: ErrorDetail


class Pagination(BaseModel):
    total: int | None = Field(None, description="Items matching across all pages (when counted).")
    page: int | None = None
    page_size: int | None = None
    total_pages: int | None = None
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last."
    )
    has_next: bool = False


# The largest offset a list accepts: past it no store holds anything, and numbers beyond 64 bits never
# reach storage (SQLite's INTEGER is 64-bit).
MAX_OFFSET = 1_000_000_000
OFFSET_HELP = f"Items to skip, 0 to {MAX_OFFSET:,}."


class ListBody(BaseModel):
    """Body of the POST …/list routes. Body values win over the query parameters."""

    model_config = ConfigDict(extra="ignore")

    limit: int | None = Field(None, ge=1, le=1000)
    page_size: int | None = Field(None, ge=1, le=1000, description="Alias of limit.")
    offset: int | None = Field(None, ge=0, le=MAX_OFFSET, description=OFFSET_HELP)
    cursor: str | None = None
    include_total: bool | None = None


class DeleteResponse(BaseModel):
    success: bool = True
    message: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 422, 500)
}


def paginate(
    total: int | None, limit: int, offset: int, next_cursor: str | None, has_next: bool
) -> Pagination:
    pages = None if total is None else (total + limit - 1) // limit
    return Pagination(
        total=total,
        page=offset // limit + 1,
        page_size=limit,
        total_pages=pages,
        next_cursor=next_cursor,
        has_next=has_next,
    )
