"""What flows between stages: ranked candidate documents."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from siftline.models import Document


@dataclass
class Candidate:
    """One result document on its way through the pipeline.

    ``fields`` holds the user fields (and whatever enrichment stages add); ``score`` is the current
    relevance; ``scores`` keeps the per-search scores of feature_search (by search index) for
    inspection and fusion; ``lineage`` (only with ``explain: true``) says where ``score`` came from:
    the search legs and fusion that made it, then each later stage's change (see pipeline/lineage.py).
    Stages never mutate a lineage in place: a change makes a new candidate with a new lineage.
    """

    document_id: str
    collection_id: str
    score: float
    fields: dict[str, Any]
    internal: dict[str, Any] = field(default_factory=dict)
    vectors: dict[str, list[float]] | None = None
    scores: dict[str, float] = field(default_factory=dict)
    lineage: dict[str, Any] | None = None

    @classmethod
    def from_document(cls, doc: Document, score: float = 0.0) -> Candidate:
        return cls(
            doc.document_id, doc.collection_id, score, dict(doc.payload), dict(doc.internal), doc.vectors
        )

    def view(self) -> dict[str, Any]:
        """The document as filters, sorts and templates see it (the wire form, ``score`` included)."""
        out: dict[str, Any] = {"document_id": self.document_id, "collection_id": self.collection_id}
        out.update(self.fields)
        out["score"] = self.score
        out["_internal"] = self.internal
        return out

    def as_result(self, with_vectors: bool = False) -> dict[str, Any]:
        """The result document returned to the client."""
        out = self.view()
        if with_vectors and self.vectors is not None:
            out["vectors"] = self.vectors
        if self.lineage is not None:
            out["lineage"] = {**self.lineage, "score": self.score}
        return out

    def with_value(self, target: str, value: Any) -> Candidate:
        """A copy with ``value`` written at ``target``: ``score``, ``scores.<name>``, or a dotted field path
        (intermediate objects are copied, never shared with this candidate)."""
        if target == "score":
            return dataclasses.replace(self, score=value)
        if target.startswith("scores."):
            return dataclasses.replace(self, scores={**self.scores, target.removeprefix("scores."): value})
        fields = dict(self.fields)
        node = fields
        *parents, last = target.split(".")
        for part in parents:
            inner = node.get(part)
            node[part] = dict(inner) if isinstance(inner, dict) else {}
            node = node[part]
        node[last] = value
        return dataclasses.replace(self, fields=fields)

    @property
    def key(self) -> tuple[str, str]:
        return (self.collection_id, self.document_id)


def rank_key(candidate: Candidate) -> tuple[float, str, str]:
    """Sort key for "best first" with deterministic ties (document id, then collection id)."""
    return (-candidate.score, candidate.document_id, candidate.collection_id)
