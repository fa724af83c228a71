"""``rag_prepare``: format the documents into LLM-ready context within a token budget, with citations.

Each document becomes a piece of text: ``document_template`` rendered per document (a per-document
parameter, left unrendered by the runner) with ``DOC`` (the candidate's view) and ``CONTEXT.INDEX``
(1-based position among the documents used) and ``CONTEXT.CITATION`` (its citation marker), plus
``INPUT``/``STAGE``; without a template a piece is ``"<marker> <content_field value>"``. Documents
are taken in their incoming order (the pipeline's ranking). No LLM is called.

Tokens are counted approximately, without a tokenizer: ``max(ceil(words * 1.3), ceil(chars / 4))``
(words split on whitespace), which is never below either usual rule of thumb. A context's count is
the sum of its pieces' counts and one separator count between pieces; it never exceeds
``max_tokens``. Truncating a piece keeps its longest prefix (cut at a word boundary when possible)
that fits.

``truncation_strategy``: ``priority_truncate`` (default) includes pieces until one does not fit,
truncates that one to the remaining budget and stops; ``drop_last`` includes whole pieces until one
does not fit and drops the rest; ``proportional`` gives each of the N pieces an equal share
(``max(budget // N, 1)``), truncating longer pieces, and stops if the budget runs out.

``output_mode``: ``single_context`` returns one document (id ``rag_context``, the collection and the
best score of the documents used) whose ``context_field`` holds the pieces joined by ``separator``
and ``citations_field`` the citations; ``formatted_list`` returns the documents used, each with
``formatted_content_field`` (its piece) and ``citations_field`` (its own citation). A citation is
``{index, marker, document_id, collection_id, score, truncated}`` plus ``title``/``url`` (read from
``title``/``url`` or ``metadata.title``/``metadata.url``) when ``include_title``/``include_url`` ask
for them. Markers by ``citation.style``: numbered ``[1]``, bracketed ``[doc_id]``, footnote ``¹``,
none (no marker). Left out: ``tokenizer`` (no tiktoken locally; the approximation is documented).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from siftline.errors import BadRequestError, ValidationError
from siftline.filters import MISSING, get_path
from siftline.pipeline import templates
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import Stage, StageParams, as_pydantic_error

SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def count_tokens(text: str) -> int:
    """Approximate token count: max(ceil(words * 1.3), ceil(characters / 4))."""
    return max(math.ceil(len(text.split()) * 1.3), math.ceil(len(text) / 4))


def truncate(text: str, budget: int) -> str:
    """The longest prefix of ``text`` within ``budget`` tokens, cut at a word boundary when possible."""
    lo, hi = 0, len(text)
    while lo < hi:  # the count grows with the prefix, so binary search the longest fitting prefix
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count_tokens(text[:mid]) <= budget else (lo, mid - 1)
    cut = text[:lo]
    if lo < len(text) and not text[lo].isspace() and any(ch.isspace() for ch in cut.strip()):
        cut = cut[: max(i for i, ch in enumerate(cut) if ch.isspace())]
    return cut.rstrip()


class CitationConfig(BaseModel):
    """How documents are cited (Mixpeek's ``StageDefsCitationConfig``)."""

    model_config = ConfigDict(extra="forbid")

    style: Literal["numbered", "bracketed", "footnote", "none"] = "numbered"
    include_title: bool = True
    include_url: bool = False


class RagPrepareParams(StageParams):
    """Budget, truncation, output shape, per-document template and citations."""

    # The SDK sends tokenizer (default cl100k_base); tokens are approximated here (see the module).
    SDK_IGNORED: ClassVar[frozenset[str]] = frozenset({"tokenizer"})

    max_tokens: int = Field(default=8000, ge=100, le=128000, description="Token budget of the context.")
    truncation_strategy: Literal["priority_truncate", "proportional", "drop_last"] = "priority_truncate"
    output_mode: Literal["single_context", "formatted_list"] = "single_context"
    document_template: str | None = Field(
        default=None, description="Jinja2 per document over DOC, CONTEXT.INDEX, CONTEXT.CITATION."
    )
    content_field: str = Field(default="content", min_length=1, description="Content without a template.")
    separator: str = Field(default="\n", description="Between pieces in single_context mode.")
    citation: CitationConfig = Field(default_factory=CitationConfig)
    context_field: str = Field(default="rag_context", min_length=1)
    citations_field: str = Field(default="citations", min_length=1)
    formatted_content_field: str = Field(default="formatted_content", min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Self:
        try:
            templates.check_syntax(self.document_template, ("document_template",))
        except ValidationError as exc:
            raise as_pydantic_error(exc, type(self).__name__) from None
        return self


def _text(value: Any) -> str:
    if value is None or value is MISSING:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


class RagPrepare(Stage[RagPrepareParams]):
    """Join formatted documents into a budgeted context (or format each), with citations."""

    stage_id: ClassVar[str] = "rag_prepare"
    category: ClassVar[str] = "apply"
    description: ClassVar[str] = (
        "Format the documents for an LLM within a token budget (approximate count): one context "
        "document with numbered citations, or each document with its formatted text."
    )
    icon: ClassVar[str] = "book-open"
    per_document: ClassVar[frozenset[str]] = frozenset({"document_template"})
    Params: ClassVar[type[RagPrepareParams]] = RagPrepareParams

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        p = self.params
        sep_tokens = count_tokens(p.separator)
        share = max((p.max_tokens - sep_tokens * max(len(candidates) - 1, 0)) // max(len(candidates), 1), 1)
        used: list[tuple[Candidate, str, dict[str, Any]]] = []
        tokens = 0
        for cand in candidates:
            index = len(used) + 1
            marker = self._marker(cand, index)
            text = self._format(ctx, cand, index, marker)
            room = p.max_tokens - tokens - (sep_tokens if used else 0)
            limit = min(room, share) if p.truncation_strategy == "proportional" else room
            cut = count_tokens(text) > limit
            if cut:
                if p.truncation_strategy == "drop_last" or limit <= 0:
                    break
                text = truncate(text, limit)
                if not text:
                    break
            tokens += count_tokens(text) + (sep_tokens if used else 0)
            used.append((cand, text, self._citation(cand, index, marker, cut)))
            if cut and p.truncation_strategy == "priority_truncate":
                break
        ctx.metadata.update(
            {
                "documents_used": len(used),
                "documents_dropped": len(candidates) - len(used),
                "tokens_used": tokens,
                "max_tokens": p.max_tokens,
                "truncated": len(used) < len(candidates) or any(c["truncated"] for _, _, c in used),
                "documents_truncated": sum(1 for _, _, c in used if c["truncated"]),
                "token_counting": "approximate: max(ceil(words * 1.3), ceil(chars / 4))",
            }
        )
        if p.output_mode == "formatted_list":
            return [
                dataclasses.replace(
                    cand, fields={**cand.fields, p.formatted_content_field: text, p.citations_field: [cit]}
                )
                for cand, text, cit in used
            ]
        fields = {
            p.context_field: p.separator.join(text for _, text, _ in used),
            p.citations_field: [cit for _, _, cit in used],
            "document_count": len(used),
            "tokens_used": tokens,
        }
        best = max((c.score for c, _, _ in used), default=0.0)
        collection = used[0][0].collection_id if used else ""
        return [Candidate("rag_context", collection, best, fields)]

    def _marker(self, cand: Candidate, index: int) -> str:
        style = self.params.citation.style
        if style == "numbered":
            return f"[{index}]"
        if style == "bracketed":
            return f"[{cand.document_id}]"
        return str(index).translate(SUPERSCRIPT) if style == "footnote" else ""

    def _format(self, ctx: ExecutionContext, cand: Candidate, index: int, marker: str) -> str:
        view = cand.view()
        if self.params.document_template is None:
            content = _text(get_path(view, self.params.content_field))
            return f"{marker} {content}" if marker else content
        base = ctx.template_context()
        extra = {**base["CONTEXT"], "INDEX": index, "CITATION": marker}
        variables = {**base, "DOC": view, "doc": view, "CONTEXT": extra, "context": extra}
        try:
            return _text(templates.render(self.params.document_template, variables, ("document_template",)))
        except ValidationError as exc:
            raise BadRequestError(
                f"rag_prepare: document_template failed on document '{cand.document_id}': {exc.message}",
                {"document_id": cand.document_id},
            ) from exc

    def _citation(self, cand: Candidate, index: int, marker: str, cut: bool) -> dict[str, Any]:
        view = cand.view()
        out: dict[str, Any] = {
            "index": index,
            "marker": marker,
            "document_id": cand.document_id,
            "collection_id": cand.collection_id,
            "score": cand.score,
            "truncated": cut,
        }
        for wanted, name in (
            (self.params.citation.include_title, "title"),
            (self.params.citation.include_url, "url"),
        ):
            value = get_path(view, name)
            value = get_path(view, f"metadata.{name}") if value is MISSING else value
            if wanted and value is not MISSING:
                out[name] = value
        return out
