"""``document_enrich``: join each candidate with a document of another collection (a left join).

The target collection (``target_collection_id``: an id or a name) is any collection of the
namespace; it is resolved at run time (the retriever's own collections first, then storage), so at
creation only the parameters' shape is checked. A candidate matches the first target document (in
storage order) whose ``target_field`` equals the candidate's ``source_field`` value. Either field may
be ``document_id``. Only scalar source values (string, number, boolean) are looked up; equality is
exact and case-sensitive, with numbers compared numerically (``1`` matches ``1.0``). A target field
holding a list matches any of its elements, as the ``in`` filter does.

Lookups are batched: the distinct source values are fetched with one ``list_documents`` call per
1000 values (an ``in`` filter; paged with the cursor when more than 1000 documents come back), or
one ``get_documents`` call per 1000 ids when ``target_field`` is ``document_id``.

``strategy``: ``enrich`` copies the joined fields (``fields_to_merge``, dotted paths allowed;
default every user field) into the candidate, at the root or nested under ``output_field``; the
candidate's document_id, collection_id and score are never overwritten. ``append`` appends the
joined document (its document_id, collection_id and those fields) to the list at ``output_field``
(required). ``allow_missing`` (default true): unmatched candidates pass unchanged; false drops them.
``when`` (a LogicalOperator filter on the candidate): only matching candidates are enriched; the
others pass through unchanged and are neither matched nor missing.

Left out (hosted-only): ``retriever_id``/``retriever_config``/``retriever_inputs`` (retriever joins),
``cache_behavior``/``cache_ttl_seconds``, and the ``replace`` strategy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, ClassVar, Literal, Protocol, Self, runtime_checkable

from pydantic import Field, PrivateAttr, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from siftline.errors import NotFoundError, ValidationError
from siftline.filters import MISSING, Node, bind, get_path, matcher, parse_filter
from siftline.models import Collection, Document
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import Stage, StageParams, as_pydantic_error

BATCH = 1000  # values per lookup query, and documents per page


@runtime_checkable
class _CollectionLookup(Protocol):
    def get_collection(self, namespace_id: str, id_or_name: str) -> Collection | None: ...


class DocumentEnrichParams(StageParams):
    """Which collection to join, on which fields, and where the joined fields go."""

    SDK_IGNORED: ClassVar[frozenset[str]] = frozenset(
        {"retriever_config", "retriever_id", "retriever_inputs"}
    )
    target_collection_id: str = Field(min_length=1, description="Id or name of the collection to join.")
    source_field: str = Field(
        default="source_object_id", min_length=1, description="Candidate's dotted path."
    )
    target_field: str = Field(default="document_id", min_length=1, description="Target's dotted path.")
    fields_to_merge: list[str] | None = Field(
        default=None, description="Target fields to copy (dotted paths); default every user field."
    )
    output_field: str | None = Field(default=None, min_length=1, description="Dotted path to nest under.")
    strategy: Literal["enrich", "append"] = Field(
        default="enrich",
        description="'enrich': merge the fields; 'append': add the joined document to a list.",
    )
    when: dict[str, Any] | None = Field(default=None, description="Only candidates matching it are enriched.")
    allow_missing: bool = Field(default=True, description="Keep unmatched candidates (false: drop them).")
    _when: Node | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _sdk_unset_only(cls, data: Any) -> Any:
        """Retriever joins are hosted-only: their SDK defaults (unset) are ignored, a value is refused."""
        if isinstance(data, dict):
            for key in ("retriever_id", "retriever_config", "retriever_inputs"):
                if data.get(key, "null") not in ("null", None):
                    kind = PydanticCustomError("extra_forbidden", "Extra inputs are not permitted")
                    details = [InitErrorDetails(type=kind, loc=(key,), input=data[key])]
                    raise PydanticValidationError.from_exception_data(cls.__name__, details)
        return data

    @model_validator(mode="before")
    @classmethod
    def _sdk_null(cls, data: Any) -> Any:
        """The SDK sends the string 'null' for an unset value: read it as null."""
        if isinstance(data, dict):
            return {k: None if k == "output_field" and v == "null" else v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _parse(self) -> Self:
        if self.strategy == "append" and self.output_field is None:
            raise as_pydantic_error(
                ValidationError.at(("output_field",), "'append' needs an output_field"), type(self).__name__
            )
        try:
            self._when = parse_filter(self.when, ("when",))
        except ValidationError as exc:
            raise as_pydantic_error(exc, type(self).__name__) from None
        return self


def _key(value: Any) -> tuple[str, Any] | None:
    """The join key of a scalar (numbers numerically); None for what cannot be joined on."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return ("number", value)
    if isinstance(value, float) and math.isfinite(value):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return None


def _set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``value`` at a dotted path, creating (or replacing non-object) intermediate objects."""
    *parents, last = dotted.split(".")
    cur = target
    for part in parents:
        nxt = cur.get(part)
        cur[part] = nxt = dict(nxt) if isinstance(nxt, dict) else {}
        cur = nxt
    cur[last] = value


class DocumentEnrich(Stage[DocumentEnrichParams]):
    """Left-join the candidates with another collection's documents, in batched lookups."""

    stage_id: ClassVar[str] = "document_enrich"
    category: ClassVar[str] = "enrich"
    description: ClassVar[str] = (
        "Join each document with the document of another collection whose target_field equals its "
        "source_field, and merge the joined fields (or append the joined document) into it."
    )
    icon: ClassVar[str] = "merge"
    Params: ClassVar[type[DocumentEnrichParams]] = DocumentEnrichParams

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        p = self.params
        target = self._target(ctx)
        node, relaxed = bind(p._when, ctx.inputs)
        when = matcher(node)
        eligible = [when(c.view()) for c in candidates]
        keys = [
            _key(get_path(c.view(), p.source_field)) if ok else None
            for c, ok in zip(candidates, eligible, strict=True)
        ]
        found, lookups = self._lookup(ctx, target, list(dict.fromkeys(k for k in keys if k)))
        out: list[Candidate] = []
        matched = missing = 0
        for cand, ok, key in zip(candidates, eligible, keys, strict=True):
            doc = found.get(key) if key is not None else None
            if ok and doc is None:
                missing += 1
                if p.allow_missing:
                    out.append(cand)
                continue
            if doc is not None:
                matched += 1
                cand = self._merge(cand, doc)
            out.append(cand)
        considered = matched + missing
        ctx.metadata.update(
            {
                "target_collection_id": target.collection_id,
                "matched": matched,
                "missing": missing,
                "skipped_by_when": len(candidates) - considered,
                "dropped": len(candidates) - len(out),
                "match_rate": round(matched / considered, 6) if considered else None,
                "lookups": lookups,
            }
        )
        if relaxed:
            ctx.relaxed.extend(r.as_dict("when") for r in relaxed)
        return out

    def _target(self, ctx: ExecutionContext) -> Collection:
        ident = self.params.target_collection_id
        found = ctx.collection(ident)
        if found is None and ctx.collections and isinstance(ctx.storage, _CollectionLookup):
            found = ctx.storage.get_collection(ctx.collections[0].namespace_id, ident)
        if found is None:
            raise NotFoundError(f"document_enrich: target collection '{ident}' not found in the namespace")
        return found

    def _lookup(
        self, ctx: ExecutionContext, target: Collection, keys: list[tuple[str, Any]]
    ) -> tuple[dict[tuple[str, Any], Document], int]:
        """The first target document of each key, and how many storage calls that took."""
        field = self.params.target_field
        found: dict[tuple[str, Any], Document] = {}
        calls = 0
        for start in range(0, len(keys), BATCH):
            values = [v for _, v in keys[start : start + BATCH]]
            docs: Iterable[Document]
            if field == "document_id":
                ids = [v for v in values if isinstance(v, str)]
                docs = ctx.storage.get_documents(target, ids) if ids else []
                calls += 1 if ids else 0
            else:
                flt = parse_filter(
                    {"field": field, "operator": "in", "value": values, "case_sensitive": True}
                )
                docs, cursor = [], None
                while True:
                    page = ctx.storage.list_documents(target, filter=flt, limit=BATCH, cursor=cursor)
                    calls += 1
                    docs.extend(page.documents)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
            for doc in docs:
                value = doc.document_id if field == "document_id" else get_path(doc.payload, field)
                for item in value if isinstance(value, list) else [value]:
                    key = _key(item) if item is not MISSING else None
                    if key is not None:
                        found.setdefault(key, doc)
        return found, calls

    def _merge(self, cand: Candidate, doc: Document) -> Candidate:
        p = self.params
        if p.fields_to_merge is None:
            joined = dict(doc.payload)
        else:
            joined = {}
            for path in p.fields_to_merge:
                value = get_path(doc.as_dict(), path)
                if value is not MISSING:
                    _set_path(joined, path, value)
        fields = dict(cand.fields)
        if p.strategy == "append":
            assert p.output_field is not None
            entry = {"document_id": doc.document_id, "collection_id": doc.collection_id, **joined}
            current = get_path(fields, p.output_field)
            _set_path(fields, p.output_field, [*(current if isinstance(current, list) else []), entry])
        elif p.output_field is not None:
            _set_path(fields, p.output_field, joined)
        else:
            for name in ("document_id", "collection_id", "score", "_internal"):
                joined.pop(name, None)
            fields.update(joined)
        return dataclasses.replace(cand, fields=fields)
