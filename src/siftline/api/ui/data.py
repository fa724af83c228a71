"""JSON for the pages' scripts, under ``/ui/api/`` with the session cookie (never the ``/v1`` API with a
key): rows of the list for live updates, an execution's raw record, and a running execution's progress
with its summary, waterfall and funnel rendered again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siftline.api.ui import listing
from siftline.api.ui.auth import SessionDep
from siftline.api.ui.pages import load_view
from siftline.api.ui.render import ENV, SECURITY_HEADERS, gzipped, to_json
from siftline.errors import NotFoundError
from siftline.service import executions, inspector

router = APIRouter(include_in_schema=False)
_IDS_MAX = 200


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        to_json(value),
        status_code=status,
        media_type="application/json",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def _not_found(exc: NotFoundError) -> Response:
    return _json(exc.envelope(), 404)


@router.get("/ui/api/executions")
def execution_rows(request: Request, session: SessionDep, ids: str = "") -> Response:
    """The list's rows of these executions (comma-separated ids; other namespaces' are left out)."""
    svc = request.app.state.services
    wanted = [i for i in ids.split(",") if i][:_IDS_MAX]
    found = inspector.executions_by_id(svc.storage, session.namespace, wanted)
    names = (
        inspector.retriever_names(svc.storage, session.namespace)
        if any(r.retriever_id for r in found)
        else {}
    )
    return _json({"executions": [listing.row_json(listing.row(r, names)) for r in found]})


@router.get("/ui/api/executions/{execution_id}")
def execution_record(
    execution_id: str, request: Request, session: SessionDep, download: bool = False
) -> Response:
    """The execution's whole record (ExecutionDetail, with ``execution_mode``); ``?download=1`` as a file."""
    svc = request.app.state.services
    try:
        record = executions.find_any(svc.storage, session.namespace, execution_id)
    except NotFoundError as exc:
        return _not_found(exc)
    detail = {"execution_mode": record.mode, **executions.execution_detail(record)}
    headers = {"Content-Disposition": f'attachment; filename="{execution_id}.json"'} if download else None
    return gzipped(_json(detail, headers=headers), request.headers.get("accept-encoding"))


@router.get("/ui/api/executions/{execution_id}/live")
def execution_live(execution_id: str, request: Request, session: SessionDep) -> Response:
    """Progress of an execution, with its summary strip, waterfall and funnel as HTML to swap in."""
    try:
        view = load_view(request.app.state.services, session, execution_id, with_results=False)
    except NotFoundError as exc:
        return _not_found(exc)
    parts = {
        name: ENV.get_template(f"_{name}.html").render(view=view) for name in ("facts", "waterfall", "funnel")
    }
    return _json(
        {
            "execution_id": view.execution_id,
            "status": view.status,
            "live": view.live,
            "current_stage": view.current_stage,
            "stages_completed": view.progress[0],
            "total_stages": view.progress[1],
            "html": parts,
        }
    )
