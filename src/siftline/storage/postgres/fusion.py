"""Learned-fusion posteriors in PostgreSQL: one row per (scope, stage, level, context key, leg).

An update locks each row it changes (created at the prior first when missing), decays it toward the
prior for the days since its last update, adds the evidence and writes it back, in one transaction: the
interactions of every server all count.
"""

from __future__ import annotations

from collections.abc import Sequence

from siftline.models import Posterior, PosteriorUpdate
from siftline.storage.postgres.db import Database

_KEY = "namespace_id = %s AND scope = %s AND stage_name = %s AND level = %s AND context_key = %s AND feature_uri = %s"


class FusionMixin:
    db: Database

    def get_posteriors(
        self, namespace_id: str, scope: str, stage: str, contexts: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Posterior]]:
        out: dict[tuple[str, str], dict[str, Posterior]] = {tuple(c): {} for c in contexts}  # type: ignore[misc]
        if not contexts:
            return out
        pairs = " OR ".join("(level = %s AND context_key = %s)" for _ in contexts)
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT level, context_key, feature_uri, alpha, beta, interactions, updated_at FROM fusion_posteriors "
                f"WHERE namespace_id = %s AND scope = %s AND stage_name = %s AND ({pairs})",
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
        ordered = sorted(updates, key=lambda u: (u.level, u.context_key, u.feature_uri))  # one lock order
        with self.db.write() as conn:
            for u in ordered:
                key = (namespace_id, scope, stage, u.level, u.context_key, u.feature_uri)
                conn.execute(
                    "INSERT INTO fusion_posteriors(namespace_id, scope, stage_name, level, context_key, feature_uri, "
                    "alpha, beta, interactions, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0, %s) "
                    "ON CONFLICT DO NOTHING",
                    (*key, u.prior_alpha, u.prior_beta, now),
                )
                alpha, beta, n, updated = conn.execute(
                    f"SELECT alpha, beta, interactions, updated_at FROM fusion_posteriors WHERE {_KEY} FOR UPDATE",
                    key,
                ).fetchone()
                alpha, beta = u.applied(alpha, beta, updated, now)
                conn.execute(
                    f"UPDATE fusion_posteriors SET alpha = %s, beta = %s, interactions = %s, updated_at = %s WHERE {_KEY}",
                    (alpha, beta, n + 1.0, now, *key),
                )

    def list_posteriors(self, namespace_id: str, scope: str) -> list[tuple[str, str, str, Posterior]]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT stage_name, level, context_key, feature_uri, alpha, beta, interactions, updated_at "
                'FROM fusion_posteriors WHERE namespace_id = %s AND scope = %s ORDER BY stage_name COLLATE "C", '
                'level COLLATE "C", context_key COLLATE "C", feature_uri COLLATE "C"',
                (namespace_id, scope),
            ).fetchall()
        return [(s, lv, k, Posterior(u, a, b, n, t)) for s, lv, k, u, a, b, n, t in rows]
