"""Documents of a collection: /v1/collections/{collection_identifier}/documents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from anyio import to_thread
from fastapi import APIRouter, Body, Query, Request
from pydantic import WithJsonSchema

from siftline.api.bodies import NDJSON, is_ndjson, json_body, write_ndjson
from siftline.api.deps import CollectionDep, ServicesDep
from siftline.api.schemas.common import ERROR_RESPONSES, MAX_OFFSET, OFFSET_HELP, DeleteResponse, paginate
from siftline.api.schemas.resources import BatchCreateOut, DocumentCountOut, DocumentListBody, DocumentListOut
from siftline.models import VECTOR_COMPONENT_MAX

router = APIRouter(
    prefix="/v1/collections/{collection_identifier}/documents", tags=["documents"], responses=ERROR_RESPONSES
)

NDJSON_CHUNK = 5000  # documents per transaction of a streamed upload
WRITERS = 16  # document writes in flight at once: small ones queue in the storage and are committed together
T = TypeVar("T")
_writers: anyio.CapacityLimiter | None = None


async def writing(call: Callable[..., T], *args: Any) -> T:
    """Run a document write in a thread of its own small pool: writes queue for the database's single
    writer, and waiting there in the shared pool's threads left searches no thread to run on (measured
    under 50 clients: every worker held by a write waiting for the lock)."""
    global _writers
    if _writers is None:
        _writers = anyio.CapacityLimiter(WRITERS)
    return await to_thread.run_sync(call, *args, limiter=_writers)


_DOC_EXAMPLE = {
    "document_id": "doc_paper_1",
    "title": "Vitamin D and bone density",
    "text": "We studied ...",
    "category": "nutrition",
    "metadata": {"year": 2021},
}
# A document as the OpenAPI document describes it: open (user fields at the root), with the bounds of
# what Siftline reads from it (service/documents.py checks them and names the field when one is off).
_VECTOR = {
    "anyOf": [
        {"type": "array", "minItems": 1, "maxItems": 4096,
         "items": {"type": "number", "minimum": -VECTOR_COMPONENT_MAX, "maximum": VECTOR_COMPONENT_MAX}},
        {"type": "string", "description": "base64 of little-endian float32 bytes"},
    ]
}  # fmt: skip
_DOCUMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": True,
    "properties": {
        "document_id": {"type": "string"},
        "vectors": {"type": "object", "additionalProperties": _VECTOR},
    },
}
DocumentBody = Annotated[
    dict[str, Any],
    WithJsonSchema(_DOCUMENT_SCHEMA),
    Body(
        description="The document: user fields at the root; optional `document_id` and `vectors` "
        '(`{"<vector name>": [numbers]}`).',
        examples=[_DOC_EXAMPLE],
    ),
]


@router.post("", summary="Create one document")
async def create_document(body: DocumentBody, svc: ServicesDep, col: CollectionDep) -> dict[str, Any]:
    return (await writing(svc.documents.create, col, body)).as_dict()


_BATCH_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["documents"],
                    "properties": {"documents": {"type": "array", "items": _DOCUMENT_SCHEMA}},
                },
                "example": {"documents": [_DOC_EXAMPLE]},
            },
            NDJSON: {"schema": {"type": "string", "description": "One document (a JSON object) per line."}},
        },
    }
}


@router.post(
    "/batch",
    summary="Create many documents: one transaction, or streamed as NDJSON",
    description='`application/json`: `{"documents": [...]}`, at most SIFTLINE_MAX_BATCH_DOCUMENTS, written '
    "in one transaction. `application/x-ndjson`: one document per line, any number, read as it streams "
    "and written in transactions of up to SIFTLINE_MAX_BATCH_DOCUMENTS (memory stays bounded). A vector "
    "is a list of numbers, or a base64 string of little-endian float32 bytes (the fast path for large "
    "loads: no per-number JSON parsing).",
    openapi_extra=_BATCH_SCHEMA,
)
async def create_documents(request: Request, svc: ServicesDep, col: CollectionDep) -> BatchCreateOut:
    if is_ndjson(request):
        chunk = min(svc.settings.max_batch_documents, NDJSON_CHUNK)
        ids = await write_ndjson(
            request, lambda docs: svc.documents.create_batch(col, {"documents": docs}), chunk, writing
        )
    else:
        body = await json_body(request)
        ids = await writing(svc.documents.create_batch, col, body)
    return BatchCreateOut(collection_id=col.collection_id, count=len(ids), document_ids=ids)


@router.post("/list", summary="List documents with filters, sort and pagination")
def list_documents(
    svc: ServicesDep,
    col: CollectionDep,
    body: DocumentListBody | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=OFFSET_HELP)] = 0,
    cursor: str | None = None,
    include_total: bool = False,
) -> DocumentListOut:
    body = body or DocumentListBody()
    limit = body.limit or body.page_size or limit
    offset = body.offset if body.offset is not None else offset
    include_total = body.include_total if body.include_total is not None else include_total
    page = svc.documents.list(
        col,
        filters=body.filters,
        sort=body.sort.model_dump() if body.sort else None,
        limit=limit,
        offset=offset,
        cursor=body.cursor or cursor,
        include_total=include_total,
        return_vectors=body.return_vectors,
    )
    return DocumentListOut(
        results=[d.as_dict() for d in page.documents],
        pagination=paginate(page.total, limit, offset, page.next_cursor, page.next_cursor is not None),
        total_documents=page.total,
    )


@router.get("/count", summary="Count the collection's documents")
def count_documents(svc: ServicesDep, col: CollectionDep) -> DocumentCountOut:
    return DocumentCountOut(collection_id=col.collection_id, count=svc.documents.count(col))


@router.get("/{document_id}", summary="Get a document")
def get_document(
    document_id: str, svc: ServicesDep, col: CollectionDep, return_vectors: bool = False
) -> dict[str, Any]:
    return svc.documents.get(col, document_id, with_vectors=return_vectors).as_dict()


@router.put("/{document_id}", summary="Replace a document (re-embeds and re-indexes)")
async def replace_document(
    document_id: str, body: DocumentBody, svc: ServicesDep, col: CollectionDep
) -> dict[str, Any]:
    return (await writing(svc.documents.replace, col, document_id, body)).as_dict()


@router.patch("/{document_id}", summary="Change some fields of a document (JSON merge patch)")
async def patch_document(
    document_id: str, body: DocumentBody, svc: ServicesDep, col: CollectionDep
) -> dict[str, Any]:
    return (await writing(svc.documents.patch, col, document_id, body)).as_dict()


@router.delete("/{document_id}", summary="Delete a document from storage and every index")
async def delete_document(document_id: str, svc: ServicesDep, col: CollectionDep) -> DeleteResponse:
    await writing(svc.documents.delete, col, document_id)
    return DeleteResponse(message=f"Document '{document_id}' deleted.")
