"""The stage contract: one class per stage, one module per class, registered in ``stages/__init__.py``.

A stage declares ``stage_id``, ``category`` (filter | sort | reduce | apply | enrich), a
``description`` and a pydantic ``Params`` model. Parameters are validated when the retriever is
created (``check`` adds semantic checks such as "the collections have this feature") and again,
after template rendering, at each execution. ``run`` turns the candidate list into a new one and may
record what it did in ``ctx.metadata`` (it becomes the stage's statistics metadata).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from siftline.errors import ValidationError
from siftline.models import Collection
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext

CATEGORIES = ("filter", "sort", "reduce", "apply", "enrich")


class StageParams(BaseModel):
    """Base of every ``Params`` model: unknown parameters are errors, named in the 422.

    ``SDK_IGNORED`` names parameters the hosted API has and a local engine does not (caching knobs,
    hosted models, timeouts): the official SDK's ``StageParams*`` models always send some of them, so
    they are accepted, listed in the JSON schema as ignored, and dropped before validation.
    """

    # NaN and ±Infinity are never a parameter (JSON has no such numbers; Python's parser accepts them)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    SDK_IGNORED: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _drop_sdk_ignored(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.SDK_IGNORED:
            return {k: v for k, v in data.items() if k not in cls.SDK_IGNORED}
        return data


P = TypeVar("P", bound=StageParams)


@dataclass
class PlanContext:
    """What creation-time checks can see: the retriever's collections and declared inputs."""

    collections: list[Collection]
    input_names: set[str] = field(default_factory=set)


class Stage(ABC, Generic[P]):
    stage_id: ClassVar[str]
    category: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[StageParams]]
    icon: ClassVar[str] = "layers"  # a Lucide icon name, for pipeline builders
    # Top-level parameters holding per-document templates (over DOC): the runner leaves them unrendered
    # and the stage renders them for each document with ``templates.render`` and DOC in the context.
    per_document: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, params: P) -> None:
        self.name = name
        self.params = params

    @classmethod
    def check(cls, params: P, plan: PlanContext, loc: list[str | int]) -> None:
        """Creation-time checks beyond the Params model; raise ValidationError naming ``loc``."""

    def units(self) -> int:
        """Billing units of one run (see ``credits.py``)."""
        return 1

    def max_documents(self, ctx: ExecutionContext, candidates: list[Candidate]) -> int:
        """The most documents this run can be charged for: its input, unless it produces its own."""
        return len(candidates)

    @abstractmethod
    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        """The stage's work: candidates in, candidates out."""

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The parameters' JSON schema; SDK-only parameters appear as accepted and ignored."""
        schema = cls.Params.model_json_schema()
        properties = schema.setdefault("properties", {})
        properties.setdefault(
            "cache_behavior",
            {
                "enum": ["auto", "disabled", "aggressive"],
                "default": "auto",
                "description": "auto: the query-embedding cache (feature_search); disabled: no stage cache, not "
                "even embeddings; aggressive: this stage's output is cached, keyed by its rendered parameters, "
                "its input, the inputs and the collections' write versions.",
            },
        )
        properties.setdefault(
            "cache_ttl_seconds",
            {
                "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}],
                "default": None,
                "description": "Lifetime of this stage's cached output (aggressive); null: until evicted.",
            },
        )
        for name in sorted(cls.Params.SDK_IGNORED):
            properties.setdefault(
                name, {"description": "Accepted for compatibility with the hosted API; ignored."}
            )
        return schema


def as_pydantic_error(exc: ValidationError, title: str) -> PydanticValidationError:
    """A Siftline ValidationError (e.g. from the filter language or templates) as a pydantic error as a pydantic error at the same location (nested properly)."""
    err = exc.errors[0]
    kind = PydanticCustomError("value_error", "{reason}", {"reason": err["msg"]})
    return PydanticValidationError.from_exception_data(
        title, [InitErrorDetails(type=kind, loc=tuple(err["loc"]), input=None)]
    )
