"""``rerank`` (sort): re-score the top candidates against the query with a model.

Two models, chosen by ``model_path``:

* none (the default): the built-in bi-encoder. The query and each document's text are embedded
  with the execution's embedder (all-MiniLM-L6-v2) and the score is their cosine, in [-1, 1].
  It is cheap and needs nothing installed, and it helps most after a keyword (BM25) or fused
  search, whose scores do not measure meaning.
* a local folder: a cross-encoder ONNX model with its ``tokenizer.json`` (see
  ``features/cross_encoder.py``), which reads query and document together: slower, more accurate.
  Its score is the sigmoid of the relevance logit, in (0, 1), unless ``normalize`` is false
  (then the raw logit). The folder and its files are checked when the parameters are validated,
  and the model's inputs and output when the retriever is created (``check``), so a wrong path
  or a model that is not a cross-encoder is a 422 naming ``model_path``, not a failed query.

Which documents: the first ``max_candidates`` in the order the previous stage returned them (the
SDK's semantics). They come out first, sorted by the new score (ties by document id); the new
score replaces ``score``, the previous one is kept in ``scores["pre_rerank"]`` and the new one
also at ``score_field``. Documents past the window follow in their incoming order with their
scores unchanged, so nothing is dropped; ``top_k`` then keeps the first ``top_k`` of the whole list.
A document without text at ``document_field`` cannot be judged: it gets the lowest score of the
scale (cosine -1, sigmoid 0; with raw logits, one below the lowest logit of the window) and goes
after every scored document of the window; the metadata counts and names such documents.

Left out of the SDK's ``StageParamsRerank`` because they configure the hosted service:
``inference_name``, ``feature_uri``, ``decision_model``, ``relevance_criteria``,
``learning_config``, ``max_concurrent_batches``, ``hard_timeout_ms``, ``cache_behavior``,
``cache_ttl_seconds``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from siftline.errors import BadRequestError, ValidationError
from siftline.features.cross_encoder import CrossEncoderError, get_cross_encoder, locate
from siftline.filters import get_path
from siftline.pipeline.candidates import Candidate, rank_key
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import PlanContext, Stage, StageParams

_MAX_LISTED = 20  # document ids named in the metadata note about documents without text
_RESERVED_SCORE_FIELDS = ("score", "document_id", "collection_id", "_internal")


def _is_template(value: str) -> bool:
    """An unrendered template (creation time): its value is only known at execution."""
    return "{{" in value or "{%" in value


def _check_path(path: str, what: str) -> str:
    path = path.strip()
    if not path or any(not part for part in path.split(".")):
        raise ValueError(f"{what} must be a dotted field path like 'text' or 'metadata.title', got {path!r}")
    return path


class RerankParams(StageParams):
    """Parameters of ``rerank``; names follow the SDK's ``StageParamsRerank`` where they apply."""

    # Hosted knobs the SDK always sends (mostly as the string "null"): no effect on a local engine.
    SDK_IGNORED: ClassVar[frozenset[str]] = frozenset(
        {"feature_uri", "decision_model", "relevance_criteria", "learning_config", "max_concurrent_batches",
         "hard_timeout_ms"}
    )  # fmt: skip

    query: str | None = Field(
        default=None,
        description="Query text the documents are compared with, usually '{{INPUT.query}}'. When "
        "omitted, the execution input 'query' is used. An empty query leaves the order unchanged.",
    )
    document_field: str | list[str] = Field(
        default="text",
        description="Dotted path of the document field holding the text to judge, or a list of "
        "paths whose texts are joined with a space.",
    )
    model_path: str | None = Field(
        default=None,
        description="Local folder of a cross-encoder: model.onnx (or onnx/model.onnx) with inputs "
        "input_ids, attention_mask and optionally token_type_ids, and its tokenizer.json. When "
        "omitted, the built-in bi-encoder (all-MiniLM-L6-v2 cosine) re-scores.",
    )
    inference_name: str | None = Field(
        default=None,
        description="A hosted reranker's name (the SDK always sends one). Accepted for compatibility: "
        "Siftline has no hosted models, re-scores with model_path or the built-in bi-encoder, and says so "
        "in the execution's warnings.",
    )
    max_candidates: int | None = Field(
        default=10,
        ge=1,
        description="How many incoming documents are re-scored: the first max_candidates in the "
        "order the previous stage returned them. Later documents follow the reranked ones in "
        "their incoming order, unscored. null re-scores every document.",
    )
    top_k: int | None = Field(
        default=None, ge=1, description="Keep only this many documents after reranking; null keeps all."
    )
    score_field: str | None = Field(
        default="scores.rerank",
        description="Where the rerank score is also stored: 'scores.<name>' keeps it with the "
        "candidate's per-stage scores; any other dotted path writes it into the document's fields. "
        "null stores it only as 'score'.",
    )
    normalize: bool = Field(
        default=True,
        description="Cross-encoder only: apply a sigmoid to the relevance logit so scores fall in "
        "(0, 1); false keeps the raw logit. Ranking is the same either way.",
    )
    max_length: int = Field(
        default=512,
        ge=8,
        le=8192,
        description="Cross-encoder only: query and document together are truncated to this many "
        "tokens (longest first). Keep it within the model's maximum (512 for BERT models).",
    )
    batch_size: int = Field(
        default=32, ge=1, le=256, description="Cross-encoder only: pairs scored per model call."
    )
    max_document_chars: int = Field(
        default=2000,
        ge=100,
        le=50000,
        description="Characters of document text given to the model; the tokenizer truncates "
        "anyway, so longer text only costs time.",
    )

    @field_validator("document_field")
    @classmethod
    def _fields(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if not value:
                raise ValueError("document_field must name at least one field")
            return [_check_path(v, "document_field") for v in value]
        return _check_path(value, "document_field")

    @field_validator("score_field")
    @classmethod
    def _score_field(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _check_path(value, "score_field")
        if value.split(".")[0] in _RESERVED_SCORE_FIELDS or value == "scores":
            raise ValueError(
                f"score_field cannot be {value!r}: use 'scores.<name>' or a field path of your own"
            )
        return value

    @field_validator("model_path")
    @classmethod
    def _model_folder(cls, value: str | None) -> str | None:
        """The folder and both files must exist; the model itself is checked by ``Rerank.check``."""
        if value is None:
            return None
        value = value.strip()
        if not value:
            raise ValueError("model_path is empty: give a folder, or omit it for the built-in bi-encoder")
        if not _is_template(value):
            try:
                locate(value)
            except CrossEncoderError as exc:
                raise ValueError(f"model_path: {exc}") from exc
        return value


class Rerank(Stage[RerankParams]):
    """Re-score the top candidates against the query with a bi-encoder or a local cross-encoder."""

    stage_id: ClassVar[str] = "rerank"
    category: ClassVar[str] = "sort"
    description: ClassVar[str] = (
        "Re-score the top candidates against the query with a model: the built-in bi-encoder "
        "(cosine of MiniLM embeddings) or a cross-encoder ONNX model from a local folder "
        "(model_path), then sort them by the new score."
    )
    Params: ClassVar[type[StageParams]] = RerankParams

    @classmethod
    def check(cls, params: RerankParams, plan: PlanContext, loc: list[str | int]) -> None:
        """Load the cross-encoder once (it stays cached for the executions) and check its signature."""
        if params.model_path is None or _is_template(params.model_path):
            return
        try:
            get_cross_encoder(params.model_path).load()
        except CrossEncoderError as exc:
            raise ValidationError.at([*loc, "model_path"], str(exc)) from exc

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        if self.params.inference_name and self.params.inference_name != "null":
            ctx.warnings.append(
                f"Stage '{self.name}': inference_name '{self.params.inference_name}' is a hosted model; "
                f"re-scored with {'the model at model_path' if self.params.model_path else 'the built-in bi-encoder'}."
            )
        return self._rerank(ctx, candidates)

    def _rerank(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        p = self.params
        limit = len(candidates) if p.max_candidates is None else p.max_candidates
        window, rest = candidates[:limit], candidates[limit:]
        query = p.query if p.query is not None else ctx.inputs.get("query")
        query = query.strip() if isinstance(query, str) else ""
        ctx.metadata.update(
            {
                "model": self._model_name(ctx),
                "model_type": "bi_encoder" if p.model_path is None else "cross_encoder",
                "documents_reranked": 0,
                "documents_scored": 0,
                "documents_without_text": 0,
                "documents_after_window": len(rest),
                "model_ms": 0.0,
            }
        )
        if not query:
            ctx.warnings.append(
                f"Stage '{self.name}' (rerank) had an empty query, so it kept the incoming order; "
                "set its 'query' parameter or the 'query' input."
            )
            ctx.metadata["skipped"] = "empty query"
            return candidates[: p.top_k] if p.top_k is not None else list(candidates)
        if not window:
            return []

        texts = [self._text(c) for c in window]
        with_text = [i for i, t in enumerate(texts) if t]
        started = time.perf_counter()
        model_scores = self._score(ctx, query, [texts[i] for i in with_text]) if with_text else np.zeros(0)
        model_ms = (time.perf_counter() - started) * 1000

        floor = self._floor(model_scores)
        new_scores = [floor] * len(window)
        for i, value in zip(with_text, model_scores.tolist(), strict=True):
            new_scores[i] = float(value)
        rescored = [self._rescored(c, s) for c, s in zip(window, new_scores, strict=True)]
        # Best first by the new score (ties by document id); documents without text after all others.
        order = sorted(range(len(window)), key=lambda i: (not texts[i], *rank_key(rescored[i])))
        out = [rescored[i] for i in order] + rest
        if p.top_k is not None:
            out = out[: p.top_k]

        without = [window[i].document_id for i, t in enumerate(texts) if not t]
        ctx.metadata.update(
            {
                "documents_reranked": len(window),
                "documents_scored": len(with_text),
                "documents_without_text": len(without),
                "model_ms": round(model_ms, 3),
            }
        )
        if without:
            ctx.metadata["documents_without_text_ids"] = without[:_MAX_LISTED]
            ctx.metadata["note"] = (
                f"{len(without)} document(s) had no text at {p.document_field!r}; they were ranked "
                f"last among the reranked documents with score {floor}."
            )
        if not with_text:
            ctx.warnings.append(
                f"Stage '{self.name}' (rerank): none of the {len(window)} documents had text at "
                f"{p.document_field!r}; check its 'document_field' parameter."
            )
        return out

    def _model_name(self, ctx: ExecutionContext) -> str:
        if self.params.model_path is None:
            return str(getattr(ctx.embedder, "name", "embedder"))
        return self.params.model_path

    def _text(self, candidate: Candidate) -> str:
        """The document's text at ``document_field`` (string, or list of strings, joined), capped."""
        paths = self.params.document_field
        parts = [
            _as_text(get_path(candidate.fields, path))
            for path in ([paths] if isinstance(paths, str) else paths)
        ]
        text = " ".join(part for part in parts if part)
        return text[: self.params.max_document_chars]

    def _score(self, ctx: ExecutionContext, query: str, texts: list[str]) -> np.ndarray:
        p = self.params
        if p.model_path is None:
            query_vector = np.asarray(ctx.embed_query(query)[0], dtype=np.float64)
            vectors = np.asarray(ctx.embedder.embed(texts), dtype=np.float64)
            return np.clip(vectors @ query_vector, -1.0, 1.0)
        try:
            model = get_cross_encoder(p.model_path)
            return model.score(
                query, texts, max_length=p.max_length, batch_size=p.batch_size, apply_sigmoid=p.normalize
            )
        except CrossEncoderError as exc:
            raise BadRequestError(f"Stage '{self.name}' (rerank): model_path: {exc}") from exc

    def _floor(self, scores: np.ndarray) -> float:
        """The score of a document without text: the scale's minimum, or below every raw logit."""
        if self.params.model_path is None:
            return -1.0
        if self.params.normalize:
            return 0.0
        return float(scores.min()) - 1.0 if scores.size else 0.0

    def _rescored(self, candidate: Candidate, score: float) -> Candidate:
        """A copy with the new score (earlier stages' candidate objects are left untouched)."""
        scores = {**candidate.scores, "pre_rerank": candidate.score}
        fields = candidate.fields
        target = self.params.score_field
        if target is not None and target.startswith("scores."):
            scores[target.removeprefix("scores.")] = score
        elif target is not None:
            fields = _with_path(fields, target.split("."), score)
        return dataclasses.replace(candidate, score=score, scores=scores, fields=fields)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return " ".join(v.strip() for v in value if isinstance(v, str) and v.strip())
    return ""


def _with_path(fields: dict[str, Any], parts: list[str], value: Any) -> dict[str, Any]:
    """``fields`` with ``value`` at a dotted path, copying each dict on the way (no shared mutation)."""
    out = dict(fields)
    head = parts[0]
    if len(parts) == 1:
        out[head] = value
    else:
        inner = out.get(head)
        out[head] = _with_path(inner if isinstance(inner, dict) else {}, parts[1:], value)
    return out
