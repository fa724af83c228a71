"""Learned-fusion posteriors in SQLite: one row per (scope, stage, level, context key, leg).

An update is one write transaction: read the row, decay it toward the prior for the days since its
last update, add the evidence, write it back. SQLite serialises writers, so concurrent interactions
are all counted. A query reads the three context levels of its stage in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence

from siftline.models import Posterior, PosteriorUpdate
from siftline.storage.sqlite.db import Database


class FusionMixin:
    db: Database

    def get_posteriors(
        self, namespace_id: str, scope: str, stage: str, contexts: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Posterior]]:
        out: dict[tuple[str, str], dict[str, Posterior]] = {tuple(c): {} for c in contexts}  # type: ignore[misc]
        if not contexts:
            return out
        pairs = " OR ".join("(level = ? AND context_key = ?)" for _ in contexts)
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT level, context_key, feature_uri, alpha, beta, interactions, updated_at FROM fusion_posteriors "
                f"WHERE namespace_id = ? AND scope = ? AND stage_name = ? AND ({pairs})",
                [namespace_id, scope, stage, *(v for c in contexts for v in c)],
            ).fetchall()
        for level, key, uri, alpha, beta, n, updated in rows:
            out.setdefault((level, key), {})[uri] = Posterior(uri, alpha, beta, n, updated)
        return out

    def update_posteriors(
        self, namespace_id: str, scope: str, stage: str, updates: Sequence[PosteriorUpdate], now: float
    ) -> None:
        if not updates:
            return
        with self.db.write() as conn:
            for u in updates:
                key = (namespace_id, scope, stage, u.level, u.context_key, u.feature_uri)
                row = conn.execute(
                    "SELECT alpha, beta, interactions, updated_at FROM fusion_posteriors WHERE namespace_id = ? "
                    "AND scope = ? AND stage_name = ? AND level = ? AND context_key = ? AND feature_uri = ?",
                    key,
                ).fetchone()
                alpha, beta, n, updated = row if row else (u.prior_alpha, u.prior_beta, 0.0, now)
                alpha, beta = u.applied(alpha, beta, updated, now)
                conn.execute(
                    "INSERT OR REPLACE INTO fusion_posteriors(namespace_id, scope, stage_name, level, context_key, "
                    "feature_uri, alpha, beta, interactions, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key, alpha, beta, n + 1.0, now),
                )

    def list_posteriors(self, namespace_id: str, scope: str) -> list[tuple[str, str, str, Posterior]]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT stage_name, level, context_key, feature_uri, alpha, beta, interactions, updated_at "
                "FROM fusion_posteriors WHERE namespace_id = ? AND scope = ? ORDER BY stage_name, level, context_key, "
                "feature_uri",
                (namespace_id, scope),
            ).fetchall()
        return [(s, lv, k, Posterior(u, a, b, n, t)) for s, lv, k, u, a, b, n, t in rows]
