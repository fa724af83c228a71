"""Learning from interactions: each stored interaction updates the posteriors of the learned-fusion
stages of the execution it names, at every context level that execution drew from (personal, segment,
global). O(legs x levels) per interaction, one write transaction; nothing scans past interactions.

Credit assignment (see docs/LEARNED_FUSION.md and ``pipeline/learned.credits``) uses the ranks each
leg gave the shown documents, kept in the execution's record. An interaction that names a
``feature_uri`` credits that leg alone (the others get the failure side).
"""

from __future__ import annotations

from typing import Any

from siftline.models import ExecutionRecord, Interaction, InteractionQuery, PosteriorUpdate, utcnow
from siftline.pipeline.learned import LearningConfig, credits, propensity_weight
from siftline.storage.base import Storage

DAY_S = 86_400.0


def _page_index(record: ExecutionRecord, interaction: Interaction) -> int:
    ids = [d.get("document_id") for d in record.documents or []]
    position = interaction.position
    if position < len(ids) and ids[position] == interaction.feature_id:
        return position
    start = int(((record.detail.get("pagination") or {}).get("offset")) or 0)
    return position - start


def _clicked_before(storage: Storage, interaction: Interaction) -> set[str]:
    found, _ = storage.list_interactions(
        interaction.namespace_id, InteractionQuery(execution_id=interaction.execution_id), 1000, 0
    )
    return {i.feature_id for i in found if i.interaction_id != interaction.interaction_id}


def _evidence(
    stage: dict[str, Any], config: LearningConfig, interaction: Interaction, shown: list[str], index: int,
    before: set[str], reward: float,
) -> list[tuple[str, float, float]]:  # fmt: skip
    uris: list[str] = stage["feature_uris"]
    named = interaction.feature_uri
    if named is not None and named in uris:  # the client says which leg produced the result
        weight = propensity_weight(index) * abs(reward)
        good = reward >= 0
        return [
            (u, weight if (u == named) == good else 0.0, weight if (u == named) != good else 0.0)
            for u in uris
        ]
    per_leg = credits(stage["ranks"], shown, interaction.feature_id, index, before, reward, len(uris))
    return [(u, s, f) for u, (s, f) in zip(uris, per_leg, strict=True)]


def learn(storage: Storage, record: ExecutionRecord, interaction: Interaction) -> int:
    """Update the posteriors the interaction teaches; returns how many legs x levels were updated."""
    stages = record.detail.get("learned_fusion_internal") or []
    if not stages or record.documents is None:
        return 0
    now = utcnow().timestamp()
    updated = 0
    shown = [str(d.get("document_id")) for d in record.documents]
    index = _page_index(record, interaction)
    before = _clicked_before(storage, interaction)
    for stage in stages:
        config = LearningConfig.model_validate(stage["config"])
        age_days = max(0.0, (now - interaction.occurred_at.timestamp()) / DAY_S)
        if age_days > config.decay_window_days:
            continue
        reward = config.reward(interaction.interaction_types) * config.decay_factor**age_days
        if reward == 0:
            continue
        evidence = _evidence(stage, config, interaction, shown, index, before, reward)
        updates = [
            PosteriorUpdate(
                level, key, uri, success, failure, config.prior_alpha, config.prior_beta, config.decay_factor
            )
            for level, key in stage["context_keys"].items()
            if key is not None
            for uri, success, failure in evidence
        ]
        scope = stage.get("scope") or record.retriever_id or ""
        storage.update_posteriors(record.namespace_id, scope, stage["stage_name"], updates, now)
        updated += len(updates)
    return updated


def posteriors(storage: Storage, namespace_id: str, scope: str) -> dict[str, Any]:
    """``GET /v1/retrievers/{id}/learned-fusion``: every posterior, by stage, level and context."""
    stages: dict[str, Any] = {}
    for stage, level, key, p in storage.list_posteriors(namespace_id, scope):
        contexts = stages.setdefault(stage, {}).setdefault(level, {})
        context = contexts.setdefault(key, {"context_key": key, "interactions": 0.0, "legs": {}})
        context["interactions"] = max(context["interactions"], p.interactions)
        context["legs"][p.feature_uri] = {
            "alpha": round(p.alpha, 6),
            "beta": round(p.beta, 6),
            "mean": round(p.alpha / (p.alpha + p.beta), 6),
            "interactions": p.interactions,
            "last_update": p.updated_at,
        }
    return {"retriever_id": scope, "stages": stages}
