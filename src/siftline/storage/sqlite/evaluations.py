"""Evaluation datasets and runs in SQLite: indexed columns for lookups and lists, the rest as JSON."""

from __future__ import annotations

import json

from siftline.errors import AlreadyExistsError
from siftline.models import EvaluationDataset, EvaluationRun, iso
from siftline.storage.rows import dataset_of, evaluation_body, run_of
from siftline.storage.sqlite.db import Database


def _dump(obj: EvaluationDataset | EvaluationRun) -> str:
    return json.dumps(evaluation_body(obj), ensure_ascii=False, default=str)


def _dataset(body: str) -> EvaluationDataset:
    return dataset_of(json.loads(body))


def _run(body: str) -> EvaluationRun:
    return run_of(json.loads(body))


class EvaluationsMixin:
    db: Database

    def create_dataset(self, dataset: EvaluationDataset) -> None:
        with self.db.write() as conn:
            taken = conn.execute(
                "SELECT 1 FROM eval_datasets WHERE namespace_id = ? AND dataset_name = ?",
                (dataset.namespace_id, dataset.dataset_name),
            ).fetchone()
            if taken:
                raise AlreadyExistsError(f"A dataset named '{dataset.dataset_name}' already exists.")
            conn.execute(
                "INSERT INTO eval_datasets(dataset_id, namespace_id, dataset_name, created_at, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (dataset.dataset_id, dataset.namespace_id, dataset.dataset_name, iso(dataset.created_at),
                 _dump(dataset)),
            )  # fmt: skip

    def get_dataset(self, namespace_id: str, id_or_name: str) -> EvaluationDataset | None:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT body FROM eval_datasets WHERE namespace_id = ? AND (dataset_id = ? OR dataset_name = ?)",
                (namespace_id, id_or_name, id_or_name),
            ).fetchone()
        return _dataset(row[0]) if row else None

    def list_datasets(
        self, namespace_id: str, limit: int, offset: int
    ) -> tuple[list[EvaluationDataset], int]:
        with self.db.read() as conn:
            total = conn.execute(
                "SELECT count(*) FROM eval_datasets WHERE namespace_id = ?", (namespace_id,)
            ).fetchone()
            rows = conn.execute(
                "SELECT body FROM eval_datasets WHERE namespace_id = ? ORDER BY created_at DESC, dataset_id "
                "LIMIT ? OFFSET ?",
                (namespace_id, limit, offset),
            ).fetchall()
        return [_dataset(r[0]) for r in rows], int(total[0])

    def delete_dataset(self, namespace_id: str, dataset_id: str) -> bool:
        with self.db.write() as conn:
            return (
                conn.execute(
                    "DELETE FROM eval_datasets WHERE namespace_id = ? AND dataset_id = ?",
                    (namespace_id, dataset_id),
                ).rowcount
                > 0
            )

    def save_evaluation(self, run: EvaluationRun) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO eval_runs(evaluation_id, namespace_id, retriever_id, dataset_name, status, "
                "created_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run.evaluation_id, run.namespace_id, run.retriever_id, run.dataset_name, run.status,
                 iso(run.created_at), _dump(run)),
            )  # fmt: skip

    def get_evaluation(self, namespace_id: str, evaluation_id: str) -> EvaluationRun | None:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT body FROM eval_runs WHERE namespace_id = ? AND evaluation_id = ?",
                (namespace_id, evaluation_id),
            ).fetchone()
        return _run(row[0]) if row else None

    def list_evaluations(
        self,
        namespace_id: str,
        retriever_id: str,
        status: str | None,
        dataset_name: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[EvaluationRun], int]:
        where, params = "namespace_id = ? AND retriever_id = ?", [namespace_id, retriever_id]
        if status is not None:
            where, params = where + " AND status = ?", [*params, status]
        if dataset_name is not None:
            where, params = where + " AND dataset_name = ?", [*params, dataset_name]
        with self.db.read() as conn:
            total = conn.execute(f"SELECT count(*) FROM eval_runs WHERE {where}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT body FROM eval_runs WHERE {where} ORDER BY created_at DESC, evaluation_id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [_run(r[0]) for r in rows], int(total)

    def unfinished_evaluations(self) -> list[EvaluationRun]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT body FROM eval_runs WHERE status IN ('pending', 'in_progress')"
            ).fetchall()
        return [_run(r[0]) for r in rows]
