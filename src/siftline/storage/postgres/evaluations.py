"""Evaluation datasets and runs in PostgreSQL: indexed columns for lookups and lists, the rest as JSON text."""

from __future__ import annotations

from siftline.errors import AlreadyExistsError
from siftline.models import EvaluationDataset, EvaluationRun
from siftline.storage.postgres.db import Database
from siftline.storage.postgres.values import json_text
from siftline.storage.rows import dataset_of, evaluation_body, run_of


def _dump(obj: EvaluationDataset | EvaluationRun) -> str:
    return json_text(evaluation_body(obj))


class EvaluationsMixin:
    db: Database

    def create_dataset(self, dataset: EvaluationDataset) -> None:
        with self.db.write() as conn:
            inserted = conn.execute(
                "INSERT INTO eval_datasets(dataset_id, namespace_id, dataset_name, created_at, body) "
                "VALUES (%s, %s, %s, %s, %s::json) ON CONFLICT DO NOTHING",
                (
                    dataset.dataset_id,
                    dataset.namespace_id,
                    dataset.dataset_name,
                    dataset.created_at,
                    _dump(dataset),
                ),
            ).rowcount
        if not inserted:
            raise AlreadyExistsError(f"A dataset named '{dataset.dataset_name}' already exists.")

    def get_dataset(self, namespace_id: str, id_or_name: str) -> EvaluationDataset | None:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT body FROM eval_datasets WHERE namespace_id = %s AND (dataset_id = %s OR dataset_name = %s) "
                "ORDER BY dataset_id = %s DESC LIMIT 1",
                (namespace_id, id_or_name, id_or_name, id_or_name),
            ).fetchone()
        return dataset_of(row[0]) if row else None

    def list_datasets(
        self, namespace_id: str, limit: int, offset: int
    ) -> tuple[list[EvaluationDataset], int]:
        with self.db.read() as conn:
            total = conn.execute(
                "SELECT count(*) FROM eval_datasets WHERE namespace_id = %s", (namespace_id,)
            ).fetchone()
            rows = conn.execute(
                "SELECT body FROM eval_datasets WHERE namespace_id = %s ORDER BY created_at DESC, dataset_id "
                "LIMIT %s OFFSET %s",
                (namespace_id, limit, offset),
            ).fetchall()
        return [dataset_of(r[0]) for r in rows], int(total[0])

    def delete_dataset(self, namespace_id: str, dataset_id: str) -> bool:
        with self.db.write() as conn:
            return bool(
                conn.execute(
                    "DELETE FROM eval_datasets WHERE namespace_id = %s AND dataset_id = %s",
                    (namespace_id, dataset_id),
                ).rowcount
            )

    def save_evaluation(self, run: EvaluationRun) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO eval_runs(evaluation_id, namespace_id, retriever_id, dataset_name, status, created_at, "
                "body) VALUES (%s, %s, %s, %s, %s, %s, %s::json) ON CONFLICT (evaluation_id) DO UPDATE SET "
                "namespace_id = excluded.namespace_id, retriever_id = excluded.retriever_id, "
                "dataset_name = excluded.dataset_name, status = excluded.status, created_at = excluded.created_at, "
                "body = excluded.body",
                (run.evaluation_id, run.namespace_id, run.retriever_id, run.dataset_name, run.status,
                 run.created_at, _dump(run)),
            )  # fmt: skip

    def get_evaluation(self, namespace_id: str, evaluation_id: str) -> EvaluationRun | None:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT body FROM eval_runs WHERE namespace_id = %s AND evaluation_id = %s",
                (namespace_id, evaluation_id),
            ).fetchone()
        return run_of(row[0]) if row else None

    def list_evaluations(
        self,
        namespace_id: str,
        retriever_id: str,
        status: str | None,
        dataset_name: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[EvaluationRun], int]:
        where, params = "namespace_id = %s AND retriever_id = %s", [namespace_id, retriever_id]
        if status is not None:
            where, params = where + " AND status = %s", [*params, status]
        if dataset_name is not None:
            where, params = where + " AND dataset_name = %s", [*params, dataset_name]
        with self.db.read() as conn:
            total = conn.execute(f"SELECT count(*) FROM eval_runs WHERE {where}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT body FROM eval_runs WHERE {where} ORDER BY created_at DESC, evaluation_id LIMIT %s OFFSET %s",
                [*params, limit, offset],
            ).fetchall()
        return [run_of(r[0]) for r in rows], int(total)

    def unfinished_evaluations(self) -> list[EvaluationRun]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT body FROM eval_runs WHERE status IN ('pending', 'in_progress')"
            ).fetchall()
        return [run_of(r[0]) for r in rows]
