"""One error tree for Siftline.

Every error a user can see derives from :class:`SiftlineError`. API-facing classes carry the HTTP
``status`` and the envelope ``type``; the one handler in ``api/app.py`` renders the envelope
``{"success": false, "status": ..., "error": {"message", "type", "details"}}``.
"""

from __future__ import annotations

from typing import Any


class SiftlineError(Exception):
    """Root of every Siftline error."""

    status: int = 500
    type: str = "InternalServerError"
    headers: dict[str, str] | None = None  # HTTP headers the response carries beside the envelope

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "details": self.details}
        return {"success": False, "status": self.status, "error": error}


class BadRequestError(SiftlineError):
    status = 400
    type = "BadRequestError"


class UnauthorizedError(SiftlineError):
    status = 401
    type = "UnauthorizedError"


class ForbiddenError(SiftlineError):
    status = 403
    type = "ForbiddenError"


class NotFoundError(SiftlineError):
    status = 404
    type = "NotFoundError"


class AlreadyExistsError(SiftlineError):
    status = 409
    type = "AlreadyExistsError"


class ConflictError(SiftlineError):
    """409: the resource exists but is not in a state that allows this (e.g. a record's documents were
    dropped by retention, so it cannot be compared)."""

    status = 409
    type = "ConflictError"


class ValidationError(SiftlineError):
    """422. ``errors`` lists each bad field: ``{"loc": [...], "msg": str, "type": str}``."""

    status = 422
    type = "ValidationError"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, {"errors": errors or []})
        self.errors = errors or []

    @classmethod
    def at(
        cls, loc: list[str | int] | tuple[str | int, ...], msg: str, kind: str = "value_error"
    ) -> ValidationError:
        """One bad field: the message names the location and what was wrong."""
        where = ".".join(str(p) for p in loc) or "body"
        return cls(f"Invalid value at '{where}': {msg}", [{"loc": list(loc), "msg": msg, "type": kind}])


class TooManyRequestsError(SiftlineError):
    """429; ``retry_after`` (whole seconds, at least 1) becomes the ``Retry-After`` header."""

    status = 429
    type = "TooManyRequestsError"

    def __init__(
        self, message: str, details: dict[str, Any] | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, details)
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers = {"Retry-After": str(max(1, int(retry_after)))}


class InternalServerError(SiftlineError):
    status = 500
    type = "InternalServerError"


class StorageError(InternalServerError):
    """A backend failure translated at the storage boundary (``raise StorageError(...) from exc``)."""


class StorageUnavailableError(StorageError):
    """The database cannot be reached right now (e.g. PostgreSQL restarting): 503, try again shortly."""

    status = 503
    type = "ServiceUnavailableError"


class ConfigError(SiftlineError):
    """Bad settings: aborts start-up with a clear message (never reaches HTTP)."""


class BackupError(SiftlineError):
    """``siftline backup``, ``verify`` or ``restore`` refused or failed; the message says why and what to do
    (never reaches HTTP)."""
