"""Signing in to the inspector: the session cookie, the CSRF checks, and the sign-in, sign-out and
namespace-switch forms.

- The session cookie (``siftline_session``) is HttpOnly, SameSite=Strict, Path=/ui (so the ``/v1`` API
  never receives it, and never accepts it: the API reads only ``Authorization``), Secure over https.
- Every POST carries the session's CSRF token (``csrf_token`` field or ``X-CSRF-Token`` header); the
  sign-in form, before any session, a random token that must equal the ``siftline_login`` cookie set
  with the form (double submit). A POST whose ``Origin`` is another site is refused as well.
- Pages without a valid session answer 303 to ``/ui/login?next=…``; ``/ui/api/…`` answers 401 JSON.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Annotated
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from siftline.api.ui.render import render
from siftline.errors import (
    ForbiddenError,
    NotFoundError,
    SiftlineError,
    TooManyRequestsError,
    UnauthorizedError,
)
from siftline.service import sessions
from siftline.service.container import Services
from siftline.service.sessions import Session

COOKIE = "siftline_session"
LOGIN_COOKIE = "siftline_login"
PATH = "/ui"
HOME = "/ui/"
_FORM_MAX = 16 * 1024
_LOGIN_TOKEN_SECONDS = 3600

router = APIRouter(include_in_schema=False)


class SignInRequired(Exception):
    """No valid session: pages go to the sign-in form, JSON answers 401."""

    def __init__(self, target: str, had_cookie: bool) -> None:
        super().__init__(target)
        self.target = target
        self.had_cookie = had_cookie


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this inspector only (never another site)."""
    if not value or any(c in value for c in "\\\r\n\t") or value.startswith("//"):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not (parts.path == PATH or parts.path.startswith(PATH + "/")):
        return HOME
    return value


def _services(request: Request) -> Services:
    return request.app.state.services


def require_session(request: Request) -> Session:
    """The request's session (a sync dependency: FastAPI runs it on the thread pool, storage may block)."""
    value = request.cookies.get(COOKIE)
    try:
        return sessions.open_session(_services(request).storage, value)
    except UnauthorizedError as exc:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target, value is not None) from exc


SessionDep = Annotated[Session, Depends(require_session)]


def sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    if request.url.path.startswith("/ui/api/"):
        error = UnauthorizedError("Sign in at /ui/login first: the inspector's data needs a session.")
        response: Response = JSONResponse(error.envelope(), status_code=401)
    else:
        response = RedirectResponse(
            f"/ui/login?next={quote(safe_next(exc.target), safe='')}", status_code=303
        )
    if exc.had_cookie:
        response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
    return response


def set_session(response: Response, request: Request, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.value,
        max_age=max(0, session.expires - int(time.time())),
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (the only kind the inspector's forms send), first value of each field."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    if len(body) > _FORM_MAX:
        return {}
    return dict(reversed(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site (Origin or Sec-Fetch-Site)."""
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def check_post(request: Request, session: Session, form: dict[str, str]) -> None:
    """403 unless this POST carries the session's CSRF token and did not come from another site."""
    if not same_origin(request):
        raise ForbiddenError("This request came from another site and was refused.")
    sessions.check_csrf(session, form.get("csrf_token") or request.headers.get("x-csrf-token"))


def forbidden_page(message: str) -> Response:
    return render("error.html", status=403, title="Refused", message=message, session=None)


def _login_page(
    request: Request, next_url: str, error: str | None = None, status: int = 200, namespace: str = ""
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        "login.html",
        status=status,
        title="Sign in",
        next_url=next_url,
        error=error,
        login_token=token,
        namespace=namespace,
        session=None,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=_LOGIN_TOKEN_SECONDS,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/ui/login")
def login_form(request: Request, next: str | None = None) -> Response:
    target = safe_next(next)
    try:
        sessions.open_session(_services(request).storage, request.cookies.get(COOKIE))
    except UnauthorizedError:
        return _login_page(request, target)
    return RedirectResponse(target, status_code=303)


@router.post("/ui/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    target = safe_next(form.get("next"))
    expected = request.cookies.get(LOGIN_COOKIE) or ""
    given = form.get("login_token", "")
    if not same_origin(request) or not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return _login_page(
            request, target, "This sign-in form expired or did not come from this site; try again.", 403
        )
    svc = _services(request)
    namespace = form.get("namespace", "")
    try:
        session = await run_in_threadpool(
            sessions.sign_in,
            svc.storage,
            form.get("api_key", ""),
            namespace,
            svc.settings.ui_session_hours,
            limiter=svc.limiter,  # sign-in attempts count against the key's rate limit
        )
    except (UnauthorizedError, ForbiddenError, NotFoundError, TooManyRequestsError) as exc:
        page = _login_page(request, target, exc.message, exc.status, namespace)
        page.headers.update(exc.headers or {})
        return page
    response = RedirectResponse(target, status_code=303)
    set_session(response, request, session)
    response.delete_cookie(LOGIN_COOKIE, path=PATH, httponly=True, samesite="strict")
    return response


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    form = await read_form(request)
    try:
        session = await run_in_threadpool(require_session, request)
    except SignInRequired:  # nothing to end
        response: Response = RedirectResponse("/ui/login", status_code=303)
    else:
        try:
            check_post(request, session, form)
        except ForbiddenError as exc:
            return forbidden_page(exc.message)
        response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
    return response


@router.post("/ui/namespace")
async def switch_namespace(request: Request) -> Response:
    form = await read_form(request)
    session = await run_in_threadpool(require_session, request)
    try:
        check_post(request, session, form)
        switched = await run_in_threadpool(
            sessions.switch_namespace, _services(request).storage, session, form.get("namespace", "")
        )
    except SiftlineError as exc:
        if exc.status == 403:
            return forbidden_page(exc.message)
        return render(
            "error.html", status=exc.status, title="Not found", message=exc.message, session=session
        )
    response = RedirectResponse(HOME, status_code=303)
    set_session(response, request, switched)
    return response
