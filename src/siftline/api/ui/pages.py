"""The inspector's pages: the executions list and one execution. Handlers are plain functions (FastAPI
runs them on the thread pool): they read storage through the service layer and render templates."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from siftline.api.ui import listing
from siftline.api.ui.auth import SessionDep
from siftline.api.ui.render import gzipped, render
from siftline.api.ui.views import ExecutionView, execution_view
from siftline.errors import NotFoundError
from siftline.service import executions, inspector, sessions
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
    record = inspector.get_execution(svc.storage, session.namespace, execution_id)
    names = inspector.retriever_names(svc.storage, session.namespace) if record.retriever_id else {}
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
        collections=inspector.collection_names(svc.storage, session.namespace),
        retriever_name=names.get(record.retriever_id or ""),
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


fallback = APIRouter(include_in_schema=False)


@fallback.get("/ui/{path:path}")
def unknown_page(path: str, request: Request, session: SessionDep) -> Response:
    """Any other /ui path: signed in, a 404 page; not signed in, the sign-in form (as every page)."""
    return not_found(session, _services(request), f"There is no page /ui/{path}.")
