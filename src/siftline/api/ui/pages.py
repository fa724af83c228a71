"""The inspector's pages: the executions list, one execution, two compared, and the "Replay now" form.
Page handlers are plain functions (FastAPI runs them on the thread pool): they read storage through the
service layer and render templates."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from siftline.api.ui import listing
from siftline.api.ui.auth import (
    SessionDep,
    SignInRequired,
    check_post,
    forbidden_page,
    read_form,
    require_session,
)
from siftline.api.ui.comparison import compare_view, read_k
from siftline.api.ui.render import gzipped, render
from siftline.api.ui.views import ExecutionView, execution_view
from siftline.errors import ForbiddenError, NotFoundError, SiftlineError
from siftline.service import compare, executions, inspector, sessions
from siftline.service.container import Services
from siftline.service.sessions import Session

router = APIRouter(include_in_schema=False)


def _services(request: Request) -> Services:
    return request.app.state.services


def page(template: str, session: Session, svc: Services, status: int = 200, **context: object) -> Response:
    """A page inside the layout: header with the namespace switcher, the key, and sign-out."""
    return render(
        template,
        status=status,
        session=session,
        namespaces=sessions.usable_namespaces(svc.storage, session.key),
        **context,
    )


def not_found(session: Session, svc: Services, message: str) -> Response:
    return page("error.html", session, svc, 404, title="Not found", message=message)


def message_page(
    session: Session, svc: Services, status: int, title: str, text: str, links: Sequence[tuple[str, str]] = ()
) -> Response:
    """A page that says why something could not be done (a 409, a missing parameter), with links onward."""
    return page("error.html", session, svc, status, title=title, message=text, links=links)


def _execution_links(*ids: str) -> list[tuple[str, str]]:
    return [(f"/ui/executions/{quote(i, safe='')}", f"Open execution {i}") for i in dict.fromkeys(ids) if i]


@router.get("/ui")
@router.get("/ui/")
@router.get("/ui/executions")
def executions_list(request: Request, session: SessionDep) -> Response:
    svc = _services(request)
    filters = listing.read_filters(dict(request.query_params))
    names = inspector.retriever_names(svc.storage, session.namespace)
    retriever_id = (
        inspector.resolve_retriever(svc.storage, session.namespace, filters.retriever)
        if filters.retriever
        else None
    )
    found = inspector.list_executions(
        svc.storage, session.namespace, listing.list_query(filters, retriever_id)
    )
    rows = [listing.row(r, names) for r in found.records]
    return page(
        "executions.html",
        session,
        svc,
        title="Executions",
        filters=filters,
        rows=rows,
        total=found.total,
        windowed=found.windowed,
        window=inspector.SORT_WINDOW,
        retrievers=sorted(names.items(), key=lambda kv: kv[1].lower()),
        columns=listing.COLUMNS,
        statuses=inspector.STATUSES,
        ranges=listing.RANGE_LABELS,
        page_sizes=listing.PAGE_SIZES,
        live=any(r.live for r in rows),
    )


def load_view(svc: Services, session: Session, execution_id: str, with_results: bool = True) -> ExecutionView:
    """The execution page's view of a record of the session's namespace (NotFoundError otherwise);
    without the results table when only the progress is wanted."""
    record = executions.find_any(svc.storage, session.namespace, execution_id)
    retriever = (
        svc.storage.get_retriever(session.namespace.namespace_id, record.retriever_id)
        if record.retriever_id
        else None
    )
    detail = executions.execution_detail(record)
    if not with_results:
        detail["documents"] = []
    for key in ("failed_stage", "execution_mode"):  # kept in the record, not part of ExecutionDetail
        if key in record.detail:
            detail[key] = record.detail[key]
    return execution_view(
        detail,
        mode=record.mode,
        planned=inspector.planned_stages(svc.storage, session.namespace, record),
        collections=inspector.collection_names(svc.storage, session.namespace) if with_results else {},
        retriever_name=retriever.retriever_name if retriever else None,
    )


@router.get("/ui/executions/{execution_id}")
def execution_page(execution_id: str, request: Request, session: SessionDep) -> Response:
    svc = _services(request)
    try:
        view = load_view(svc, session, execution_id)
    except NotFoundError as exc:
        return not_found(session, svc, exc.message)
    response = page("execution.html", session, svc, title=execution_id, view=view)
    return gzipped(response, request.headers.get("accept-encoding"))


@router.get("/ui/compare")
def compare_page(
    request: Request, session: SessionDep, a: str = "", b: str = "", k: str = "", show: str = "all"
) -> Response:
    """Two executions of the session's namespace side by side (``a`` the older or the original)."""
    svc = _services(request)
    if not a or not b:
        text = "Tick two executions in the list and press Compare: this page needs ?a=…&b=…."
        return message_page(session, svc, 400, "Pick two executions", text)
    try:
        result = compare.compare(svc.storage, session.namespace, a, b, read_k(k))
    except NotFoundError as exc:
        return not_found(session, svc, exc.message)
    except SiftlineError as exc:  # 409: a record's documents are not kept
        return message_page(session, svc, exc.status, "Cannot compare", exc.message, _execution_links(a, b))
    saved = result["a"]["retriever_id"] or result["b"]["retriever_id"]
    names = inspector.retriever_names(svc.storage, session.namespace) if saved else {}
    view = compare_view(
        result,
        show=show,
        retriever_names=names,
        collections=inspector.collection_names(svc.storage, session.namespace),
    )
    response = page("compare.html", session, svc, title=f"Compare {a} with {b}", view=view)
    return gzipped(response, request.headers.get("accept-encoding"))


def _replay(svc: Services, session: Session, execution_id: str) -> str:
    record = executions.find_any(svc.storage, session.namespace, execution_id)
    return str(svc.executor.replay(session.namespace, record)["execution_id"])


@router.post("/ui/executions/{execution_id}/replay")
async def replay_now(execution_id: str, request: Request) -> Response:
    """Run an execution again now (CSRF-checked form), then show what changed: 303 to the comparison."""
    form = await read_form(request)
    try:
        session = await run_in_threadpool(require_session, request)
    except SignInRequired as exc:  # after signing in, back to the execution (not to this POST)
        raise SignInRequired(f"/ui/executions/{quote(execution_id, safe='')}", exc.had_cookie) from None
    try:
        check_post(request, session, form)
    except ForbiddenError as exc:
        return forbidden_page(exc.message)
    svc = _services(request)
    try:
        replayed = await run_in_threadpool(_replay, svc, session, execution_id)
    except NotFoundError as exc:
        return await run_in_threadpool(not_found, session, svc, exc.message)
    except SiftlineError as exc:  # 409: it failed before its stages ran, or its collection is gone
        links = _execution_links(execution_id)
        return await run_in_threadpool(
            message_page, session, svc, exc.status, "Cannot replay", exc.message, links
        )
    target = "/ui/compare?" + urlencode({"a": execution_id, "b": replayed})
    return RedirectResponse(target, status_code=303)


fallback = APIRouter(include_in_schema=False)


@fallback.get("/ui/{path:path}")
def unknown_page(path: str, request: Request, session: SessionDep) -> Response:
    """Any other /ui path: signed in, a 404 page; not signed in, the sign-in form (as every page)."""
    return not_found(session, _services(request), f"There is no page /ui/{path}.")
