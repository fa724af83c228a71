"""The typed, validated plan of a retriever: built (and every error found) when the retriever is created.

A stage arrives as ``{"stage_name", "stage_type", "config": {"stage_id", "parameters", "pre_filters",
"post_filters"}}`` or flat as ``{"stage_id", "stage_type", "parameters", …}``. Validation, each error a
422 naming the stage and field: the stage id is registered; ``stage_type`` (when given) is the stage's
category; stage names are unique; filters parse; templates parse and read only declared inputs; the
parameters validate against the stage's ``Params`` (templated values are checked with sample inputs,
and the values only known at run time are left to execution); the stage's own checks pass (e.g. the
collections have the feature a search names).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pydantic

import siftline.pipeline.templates as templates
from siftline.errors import ValidationError
from siftline.filters import parse_filter
from siftline.models import Collection
from siftline.pipeline.stages import STAGES
from siftline.pipeline.stages.base import PlanContext, Stage, StageParams

Loc = list[str | int]
SAMPLE_BY_TYPE: dict[str, Any] = {
    "string": "sample",
    "text": "sample",
    "integer": 1,
    "number": 1.0,
    "float": 1.0,
    "boolean": True,
    "array": [],
    "object": {},
    "date": "2024-01-01",
    "datetime": "2024-01-01T00:00:00Z",
    "document_reference": {"document_id": "doc_sample"},
}


CACHE_BEHAVIORS = ("auto", "disabled", "aggressive")
MAX_CACHE_TTL_S = 365 * 24 * 3600


@dataclass(frozen=True)
class PlannedStage:
    index: int
    name: str
    stage_id: str
    stage_type: str
    parameters: dict[str, Any]  # raw: may hold templates, rendered at each execution
    pre_filters: dict[str, Any] | None
    post_filters: dict[str, Any] | None
    on_error: str  # "error" | "skip"
    # any stage's parameters may carry these (as the SDK sends them); kept apart from the stage's Params
    cache_behavior: str = "auto"  # auto | disabled | aggressive
    cache_ttl_seconds: int | None = None
    # set by the optimizer: stages this one runs on its own (rule, stage), in pipeline order, and
    # whether its post_filters are evaluated by storage inside the stage
    absorbed: tuple[tuple[str, PlannedStage], ...] = ()
    post_filters_pushed: bool = False

    @property
    def stage_class(self) -> type[Stage[Any]]:
        return STAGES[self.stage_id]

    def to_config(self) -> dict[str, Any]:
        """The normalised stage form stored and returned."""
        parameters = dict(self.parameters)
        if self.cache_behavior != "auto":
            parameters["cache_behavior"] = self.cache_behavior
        if self.cache_ttl_seconds is not None:
            parameters["cache_ttl_seconds"] = self.cache_ttl_seconds
        config: dict[str, Any] = {"stage_id": self.stage_id, "parameters": parameters}
        if self.pre_filters:
            config["pre_filters"] = self.pre_filters
        if self.post_filters:
            config["post_filters"] = self.post_filters
        return {
            "stage_name": self.name,
            "stage_type": self.stage_type,
            "config": config,
            "on_error": self.on_error,
        }


@dataclass(frozen=True)
class Plan:
    stages: tuple[PlannedStage, ...]

    def configs(self) -> list[dict[str, Any]]:
        return [s.to_config() for s in self.stages]


def _normalise(raw: Any, loc: Loc) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValidationError.at(loc, "a stage is an object: {stage_name, config: {stage_id, parameters}}")
    config = raw.get("config")
    if config is None:  # the flat form
        config = {k: raw.get(k) for k in ("stage_id", "parameters", "pre_filters", "post_filters")}
    elif not isinstance(config, dict):
        raise ValidationError.at([*loc, "config"], "config is an object: {stage_id, parameters}")
    stage_id = config.get("stage_id")
    if not isinstance(stage_id, str) or stage_id not in STAGES:
        where = [*loc, "config", "stage_id"] if "config" in raw else [*loc, "stage_id"]
        raise ValidationError.at(
            where,
            f"unknown stage '{stage_id}'; available: {', '.join(sorted(STAGES))} (GET /v1/retrievers/stages)",
        )
    params = config.get("parameters") or {}
    if not isinstance(params, dict):
        raise ValidationError.at([*loc, "config", "parameters"], "parameters is an object")
    params = dict(params)
    behavior, ttl = _cache_params(params, [*loc, "config", "parameters"])
    name = raw.get("stage_name") or stage_id
    if not isinstance(name, str):
        raise ValidationError.at([*loc, "stage_name"], "stage_name is a string")
    on_error = raw.get("on_error") or "error"
    if on_error not in ("error", "skip"):
        raise ValidationError.at([*loc, "on_error"], "on_error is 'error' or 'skip'")
    return {
        "name": name,
        "stage_id": stage_id,
        "stage_type": raw.get("stage_type"),
        "parameters": params,
        "pre_filters": config.get("pre_filters") or None,
        "post_filters": config.get("post_filters") or None,
        "on_error": on_error,
        "cache_behavior": behavior,
        "cache_ttl_seconds": ttl,
    }


def _cache_params(params: dict[str, Any], loc: Loc) -> tuple[str, int | None]:
    """Take ``cache_behavior`` and ``cache_ttl_seconds`` out of a stage's parameters, validated."""
    behavior = params.pop("cache_behavior", None)
    if behavior in (None, "null"):  # the SDK sends unset knobs as "null"
        behavior = "auto"
    if behavior not in CACHE_BEHAVIORS:
        raise ValidationError.at(
            [*loc, "cache_behavior"],
            f"cache_behavior is one of {', '.join(CACHE_BEHAVIORS)}; got {behavior!r}",
        )
    ttl = params.pop("cache_ttl_seconds", None)
    ttl = None if ttl == "null" else ttl
    if ttl is not None and (
        isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_CACHE_TTL_S
    ):
        raise ValidationError.at(
            [*loc, "cache_ttl_seconds"],
            f"cache_ttl_seconds is an integer from 0 to {MAX_CACHE_TTL_S} (or null: kept until evicted)",
        )
    return behavior, ttl


def sample_inputs(input_schema: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Values standing in for the inputs when validating templated parameters at creation."""
    out: dict[str, Any] = {}
    for name, spec in input_schema.items():
        if spec.get("default") is not None:
            out[name] = spec["default"]
        elif spec.get("enum"):
            out[name] = spec["enum"][0]
        else:
            out[name] = SAMPLE_BY_TYPE.get(str(spec.get("type", "string")), "sample")
    return out


def _templated_paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _templated_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _templated_paths(v, (*path, i))]
    return [path] if templates.is_template(value) else []


def validate_params(
    stage_class: type[Stage[Any]],
    raw: dict[str, Any],
    context: dict[str, Any],
    loc: Loc,
    lenient: bool = False,
) -> StageParams | None:
    """Render ``raw`` with ``context`` and validate it.

    ``lenient`` (creation time, sample inputs) forgives errors at templated values, which only the
    real inputs can settle; it then returns None (the parameters are checked again at execution).
    """
    kept = {k: v for k, v in raw.items() if k in stage_class.per_document}  # rendered per document
    try:
        rendered = {**templates.render({k: v for k, v in raw.items() if k not in kept}, context, loc), **kept}
    except ValidationError:
        if lenient:  # e.g. a template over STAGE outputs or CONTEXT values that only exist at run time
            return None
        raise
    try:
        return stage_class.Params.model_validate(rendered)
    except pydantic.ValidationError as exc:
        templated = _templated_paths(raw)
        errors = []
        for err in exc.errors():
            where = tuple(err["loc"])
            if lenient and any(where[: len(t)] == t or t[: len(where)] == where for t in templated):
                continue
            errors.append({"loc": [*loc, *where], "msg": err["msg"], "type": err["type"]})
        if not errors:
            return None
        listed = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
        raise ValidationError(f"Invalid stage parameters: {listed}", errors) from exc


def stored_plan(configs: Sequence[dict[str, Any]]) -> Plan:
    """The plan of a stored retriever: validated at creation, so only rebuilt here (parameters are
    validated again, with the real inputs, as each stage runs; checks that depend on the environment,
    such as a model folder, then fail that stage instead of the request)."""
    stages = []
    for i, config in enumerate(configs):
        spec = _normalise(config, ["retriever", "stages", i])
        stages.append(
            PlannedStage(
                index=i,
                name=spec["name"],
                stage_id=spec["stage_id"],
                stage_type=STAGES[spec["stage_id"]].category,
                parameters=spec["parameters"],
                pre_filters=spec["pre_filters"],
                post_filters=spec["post_filters"],
                on_error=spec["on_error"],
                cache_behavior=spec["cache_behavior"],
                cache_ttl_seconds=spec["cache_ttl_seconds"],
            )
        )
    return Plan(tuple(stages))


def build_plan(
    raw_stages: Any,
    collections: list[Collection],
    input_schema: dict[str, dict[str, Any]],
    loc: Loc | None = None,
) -> Plan:
    loc = loc or ["body", "stages"]
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ValidationError.at(loc, "a retriever has at least one stage")
    planned: list[PlannedStage] = []
    names: set[str] = set()
    context = {
        "INPUT": sample_inputs(input_schema),
        "CONTEXT": {"budget_remaining": None, "time_elapsed_ms": 0},
    }
    context.update({"inputs": context["INPUT"], "context": context["CONTEXT"], "STAGE": {}, "stage": {}})
    plan_ctx = PlanContext(collections=collections, input_names=set(input_schema))
    for i, raw in enumerate(raw_stages):
        sloc: Loc = [*loc, i]
        spec = _normalise(raw, sloc)
        stage_class = STAGES[spec["stage_id"]]
        if spec["name"] in names:
            raise ValidationError.at([*sloc, "stage_name"], f"stage name '{spec['name']}' is used twice")
        names.add(spec["name"])
        if spec["stage_type"] not in (None, stage_class.category):
            raise ValidationError.at(
                [*sloc, "stage_type"], f"stage '{spec['stage_id']}' is of type '{stage_class.category}'"
            )
        ploc: Loc = [*sloc, "config", "parameters"]
        templates.check_syntax(spec["parameters"], ploc)
        unknown = templates.referenced_inputs(spec["parameters"]) - set(input_schema)
        if unknown:
            raise ValidationError.at(
                ploc,
                f"stage '{spec['name']}' reads input(s) {', '.join(sorted(unknown))} that input_schema does not "
                "declare; add them to input_schema",
            )
        for key in ("pre_filters", "post_filters"):
            if spec[key] is not None:
                parse_filter(spec[key], (*sloc, "config", key))
        params = validate_params(stage_class, spec["parameters"], context, ploc, lenient=True)
        if params is not None:
            stage_class.check(params, plan_ctx, ploc)
        planned.append(
            PlannedStage(
                index=i,
                name=spec["name"],
                stage_id=spec["stage_id"],
                stage_type=stage_class.category,
                parameters=spec["parameters"],
                pre_filters=spec["pre_filters"],
                post_filters=spec["post_filters"],
                on_error=spec["on_error"],
                cache_behavior=spec["cache_behavior"],
                cache_ttl_seconds=spec["cache_ttl_seconds"],
            )
        )
    return Plan(tuple(planned))
