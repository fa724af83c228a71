"""Learned fusion: per-leg weights drawn by Thompson sampling from Beta posteriors fed by interactions.

Pure functions only (the storage of posteriors and the reading of interactions live below and above):

* :class:`LearningConfig` — the SDK's ``learning_config``, validated when the retriever is created.
* :func:`draw_weights` — one Thompson draw: each leg's weight is a sample of Beta(alpha, beta) tempered by the
  effective exploration (``exploration_bonus * exploration_decay^n``, not below ``exploration_floor``),
  normalised to sum 1 and clipped to ``[min_weight, max_weight]``. A seeded generator, so the same seed
  draws the same weights.
* :func:`credits` — what one interaction teaches each leg (see docs/LEARNED_FUSION.md): a leg earns
  success in proportion to how high *it* ranked the clicked document (a DCG discount of its own rank,
  0 when it did not retrieve it), failure for the rest; documents shown above the click and not clicked
  give the legs that ranked them high failure evidence; the whole is weighted by the inverse of the
  position's examination propensity, capped.
"""

from __future__ import annotations

import hashlib
import math
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from siftline.models import INTERACTION_TYPES, Posterior
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import StageParams

Level = Literal["personal", "segment", "global", "prior"]
PROPENSITY_CAP = 5.0  # inverse-propensity weight of a click at most (position 4 and below)
SKIP_WEIGHT = 0.5  # failure evidence of a document shown above a click, relative to the click


class LearningConfig(StageParams):
    """``learning_config`` of ``fusion: "learned"`` (names, ranges and defaults as in the SDK)."""

    algorithm: Literal["thompson_sampling"] = "thompson_sampling"
    context_features: list[str] = Field(default_factory=lambda: ["INPUT.user_id"])
    demographic_features: list[str] = Field(default_factory=list)
    fallback_strategy: Literal["hierarchical", "global"] = "hierarchical"
    min_interactions: int = Field(5, ge=1, le=100)
    reward_signal: str = "click"
    exploration_bonus: float = Field(1.0, ge=0.1, le=10.0)
    prior_alpha: float = Field(1.0, ge=0.1, le=1000.0)
    prior_beta: float = Field(1.0, ge=0.1, le=1000.0)
    reward_map: dict[str, float] | None = None
    decay_factor: float = Field(0.995, ge=0.9, le=1.0)
    decay_window_days: int = Field(365, ge=1, le=3650)
    min_weight: float = Field(0.05, ge=0.0, le=0.5)
    max_weight: float = Field(0.95, ge=0.5, le=1.0)
    exploration_decay: float = Field(0.99, ge=0.9, le=1.0)
    exploration_floor: float = Field(0.1, ge=0.0, le=5.0)
    max_reward_per_interaction: float = Field(5.0, ge=0.1, le=100.0)
    rollout_pct: float = Field(100.0, ge=0.0, le=100.0)
    shadow_mode: bool = False
    circuit_breaker_timeout_ms: int = Field(1000, ge=1, le=30000)
    evaluation_dataset_id: None = Field(
        None, description="Not supported yet: weights are learned online only (no evaluation gate)."
    )
    shipped_weight_set: None = Field(None, description="Read-only in the hosted product; never set here.")

    @field_validator("context_features", "demographic_features")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            root = path.split(".")[0]
            if root not in ("INPUT", "inputs", "input") or len(path.split(".")) < 2:
                raise ValueError(f"{path!r}: a context feature reads an input, e.g. 'INPUT.user_id'")
        return value

    @field_validator("reward_map")
    @classmethod
    def _rewards(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, reward in (value or {}).items():
            if key not in INTERACTION_TYPES:
                raise ValueError(f"reward_map: unknown interaction type {key!r}")
            if not math.isfinite(reward) or abs(reward) > 100:
                raise ValueError(f"reward_map[{key!r}] is a number from -100 to 100")
        return value

    def reward(self, types: Sequence[str]) -> float:
        """The reward of an interaction (its types' rewards summed), capped in magnitude."""
        table = self.reward_map if self.reward_map is not None else {self.reward_signal: 1.0}
        total = sum(table.get(t, 0.0) for t in types)
        cap = self.max_reward_per_interaction
        return max(-cap, min(cap, total))


def effective_exploration(config: LearningConfig, interactions: float) -> float:
    return max(config.exploration_floor, config.exploration_bonus * config.exploration_decay**interactions)


def draw_weights(
    posteriors: Sequence[tuple[float, float]], exploration: float, config: LearningConfig, seed: int
) -> list[float]:
    """One Thompson draw of normalised, clipped weights (same seed, same posteriors: same weights)."""
    rng = np.random.default_rng(seed)
    samples = []
    for alpha, beta in posteriors:
        # tempered posterior: evidence counts 1/exploration as much (more exploration: wider draws)
        a = 1.0 + max(alpha - 1.0, 0.0) / max(exploration, 1e-6) if alpha >= 1 else alpha
        b = 1.0 + max(beta - 1.0, 0.0) / max(exploration, 1e-6) if beta >= 1 else beta
        samples.append(float(rng.beta(max(a, 1e-3), max(b, 1e-3))))
    return clip_weights(samples, config.min_weight, config.max_weight)


def clip_weights(raw: Sequence[float], low: float, high: float) -> list[float]:
    """Normalise to sum 1, then keep every weight within [low, high] (redistributing what clipping moves)."""
    n = len(raw)
    if n == 0:
        return []
    if n == 1:
        return [1.0]
    total = sum(raw)
    weights = [w / total for w in raw] if total > 0 else [1.0 / n] * n
    low, high = min(low, 1.0 / n), max(high, 1.0 / n)
    for _ in range(50):
        fixed = [min(max(w, low), high) for w in weights]
        free = [i for i, w in enumerate(fixed) if low < w < high]
        excess = 1.0 - sum(fixed)
        if abs(excess) < 1e-12 or not free:
            weights = fixed
            break
        share = sum(fixed[i] for i in free)
        weights = [w + excess * w / share if i in free else w for i, w in enumerate(fixed)]
    return [round(w, 6) for w in weights]


def propensity_weight(position: int) -> float:
    """Inverse of the chance a user looks at ``position`` (1 / (1 + position)), capped."""
    return min(1.0 + position, PROPENSITY_CAP)


def leg_credit(rank: int | None) -> float:
    """How much a leg contributed a document it ranked at ``rank`` (0-based): 1 / log2(2 + rank)."""
    return 0.0 if rank is None else 1.0 / math.log2(2 + rank)


def credits(
    ranks: Mapping[str, Sequence[int | None]],
    shown: Sequence[str],
    clicked: str,
    position: int,
    clicked_before: set[str],
    reward: float,
    legs: int,
) -> list[tuple[float, float]]:
    """(success, failure) evidence per leg from one interaction on ``clicked`` shown at ``position``.

    ``ranks[doc]`` holds each leg's own rank of a shown document (None: the leg did not retrieve it);
    ``shown`` the documents in the order shown; ``clicked_before`` the documents of the same execution
    already interacted with (not counted as skipped). A negative reward (e.g. negative feedback) turns
    the click's success into failure.
    """
    weight = propensity_weight(position) * abs(reward)
    out = [[0.0, 0.0] for _ in range(legs)]
    own = list(ranks.get(clicked) or [])
    for i in range(legs):
        c = leg_credit(own[i] if i < len(own) else None)
        if reward >= 0:  # the leg that ranked the chosen document high was right, the others less so
            out[i][0] += weight * c
            out[i][1] += weight * (1.0 - c)
        else:  # negative feedback: the legs that ranked it high were wrong
            out[i][1] += weight * c
    if reward > 0:  # documents shown above the click and not chosen: plausibly seen and skipped
        above = [d for d in shown[:position] if d != clicked and d not in clicked_before]
        for doc in above:
            doc_ranks = list(ranks.get(doc) or [])
            for i in range(legs):
                rank = doc_ranks[i] if i < len(doc_ranks) else None
                out[i][1] += SKIP_WEIGHT * reward * leg_credit(rank) / len(above)
    return [(round(s, 9), round(f, 9)) for s, f in out]


# -- at query time ------------------------------------------------------------------------------------


def context_keys(config: LearningConfig, inputs: Mapping[str, object]) -> dict[str, str | None]:
    """The personal, segment and global context keys of an execution (None: an input is missing)."""

    def key(paths: Sequence[str]) -> str | None:
        if not paths:
            return None
        values = []
        for path in paths:
            value: object = inputs
            for part in path.split(".")[1:]:
                value = value.get(part) if isinstance(value, Mapping) else None
            if value is None or isinstance(value, Mapping | list):
                return None
            values.append(f"{path}={value}")
        return "|".join(values)

    segment = key(config.demographic_features) if config.fallback_strategy == "hierarchical" else None
    return {"personal": key(config.context_features), "segment": segment, "global": "global"}


def in_rollout(config: LearningConfig, personal: str | None) -> bool:
    """Deterministic bucketing by the personal context (the user): the same user, the same answer."""
    if config.rollout_pct >= 100:
        return True
    digest = int.from_bytes(hashlib.sha1((personal or "").encode()).digest()[:4], "big")
    return digest % 10_000 < config.rollout_pct * 100


def faded(posterior: Posterior, config: LearningConfig, now: float) -> tuple[float, float]:
    """A stored posterior decayed toward the prior for the days since its last update."""
    fade = config.decay_factor ** max(0.0, (now - posterior.updated_at) / 86_400.0)
    alpha = config.prior_alpha + (posterior.alpha - config.prior_alpha) * fade
    beta = config.prior_beta + (posterior.beta - config.prior_beta) * fade
    return alpha, beta


def choose_level(
    config: LearningConfig,
    keys: Mapping[str, str | None],
    found: Mapping[tuple[str, str], Mapping[str, Posterior]],
) -> tuple[Level, str | None]:
    """The most specific context with ``min_interactions`` (personal → segment → global), else the prior."""
    for level in ("personal", "segment", "global"):
        key = keys.get(level)
        if key is None:
            continue
        legs = found.get((level, key)) or {}
        if legs and max(p.interactions for p in legs.values()) >= config.min_interactions:
            return level, key
    return "prior", None


def resolve(
    ctx: ExecutionContext, stage: str, config: LearningConfig, uris: Sequence[str], now: float
) -> tuple[list[float] | None, dict[str, Any]]:
    """This execution's learned weights for a stage's legs (None: serve static fusion) and the context
    the record keeps: level and key used, sampled weights, exploration, seed, and why static if so."""
    started = time.perf_counter()
    keys = context_keys(config, ctx.inputs)
    asked = [(level, key) for level, key in keys.items() if key is not None]
    namespace = ctx.collections[0].namespace_id if ctx.collections else ""
    found = ctx.storage.get_posteriors(namespace, ctx.fusion_scope, stage, asked)
    level, key = choose_level(config, keys, found)
    legs = found.get((level, key), {}) if key is not None else {}
    posteriors = [
        faded(legs[u], config, now) if u in legs else (config.prior_alpha, config.prior_beta) for u in uris
    ]
    count = max((p.interactions for p in legs.values()), default=0.0)
    exploration = effective_exploration(config, count)
    seed = (ctx.fusion_seed + zlib.crc32(stage.encode())) % (1 << 63)
    weights = draw_weights(posteriors, exploration, config, seed)
    context: dict[str, Any] = {
        "stage_name": stage,
        "context_key": key or "prior",
        "context_level": level,
        "sampled_weights": dict(zip(uris, weights, strict=True)),
        "feature_uris": list(uris),
        "effective_exploration": round(exploration, 6),
        "seed": seed,
        "interactions": count,
        "posteriors": {
            u: {"alpha": round(a, 6), "beta": round(b, 6)} for u, (a, b) in zip(uris, posteriors, strict=True)
        },
        "context_keys": keys,
        "served": "learned",
    }
    if (time.perf_counter() - started) * 1000 > config.circuit_breaker_timeout_ms:
        context["served"] = "static: the circuit breaker tripped (posteriors took too long to read)"
    elif not in_rollout(config, keys["personal"]):
        context["served"] = f"static: outside the {config.rollout_pct:g} % rollout"
    elif config.shadow_mode:
        context["served"] = "static: shadow mode (weights drawn and recorded, not used)"
    return (weights if context["served"] == "learned" else None), context
