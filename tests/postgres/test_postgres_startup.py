"""Opening the PostgreSQL database: a bad configuration stops with a message naming the fix, and the
migrations are applied once, whoever starts first."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from siftline.storage.postgres import db as pgdb
from siftline.storage.postgres.db import ConfigurationError, Database
from siftline.storage.postgres.local import LocalPostgres, free_port
from siftline.storage.postgres.migrations import MIGRATIONS, Migration


def _open(url: str) -> Database:
    return Database(url, max_size=2, timeout_s=3)


def test_an_unreachable_server_stops_start_up_quickly_with_the_fix(postgres: LocalPostgres) -> None:
    url = f"postgresql://postgres@/postgres?host={postgres.root}&port={free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ConfigurationError) as raised:
        _open(url)
    assert time.monotonic() - t0 < 10
    message = str(raised.value)
    assert "Cannot connect to PostgreSQL" in message and "SIFTLINE_POSTGRES_URL" in message


def test_a_missing_database_names_createdb(postgres: LocalPostgres) -> None:
    url = f"postgresql://postgres@/nowhere_{uuid.uuid4().hex[:8]}?host={postgres.root}&port={postgres.port}"
    with pytest.raises(ConfigurationError, match="create the database"):
        _open(url)


def test_an_unknown_role_names_the_fix(postgres: LocalPostgres) -> None:
    url = f"postgresql://nobody_{uuid.uuid4().hex[:6]}@/postgres?host={postgres.root}&port={postgres.port}"
    with pytest.raises(ConfigurationError, match="create the role"):
        _open(url)


@pytest.fixture
def password_role(postgres: LocalPostgres) -> Iterator[str]:
    """A role that must give its password (scram), ahead of the cluster's trust rule; its name."""
    role = f"pw_{uuid.uuid4().hex[:6]}"
    hba = postgres.data / "pg_hba.conf"
    before = hba.read_text()
    hba.write_text(f"local all {role} scram-sha-256\n" + before)
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'right-password'")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.2)
    try:
        yield role
    finally:
        hba.write_text(before)
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_a_wrong_password_names_the_credentials(postgres: LocalPostgres, password_role: str) -> None:
    url = f"postgresql://{password_role}:wrong@/postgres?host={postgres.root}&port={postgres.port}"
    with pytest.raises(ConfigurationError) as raised:
        _open(url)
    message = str(raised.value)
    assert "check the user and password" in message
    assert "wrong" not in message.replace("wrong@", "")  # the password is not echoed
    assert ":***@" in message


def test_pgvector_missing_names_the_install(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Database, "extension", "vector_not_on_this_server")
    with pytest.raises(ConfigurationError, match=r"install pgvector 0\.8 or newer"):
        _open(database)


def test_pgvector_too_old_names_the_upgrade(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgdb, "MIN_PGVECTOR", (99, 0, 0))
    with pytest.raises(ConfigurationError, match=r"pgvector 0\.8\.\d+ is too old: Siftline needs 99\.0\.0"):
        _open(database)


def test_a_role_that_may_not_enable_pgvector_is_told_to_ask_a_superuser(
    postgres: LocalPostgres, database: str
) -> None:
    role = f"plain_{uuid.uuid4().hex[:6]}"
    name = urlsplit(database).path.lstrip("/")
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        url = f"postgresql://{role}@/{name}?host={postgres.root}&port={postgres.port}"
        with pytest.raises(
            ConfigurationError, match=f"CREATE EXTENSION {Database.extension};' once as a superuser"
        ):
            _open(url)
    finally:
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_migrations_apply_once_and_record_their_versions(database: str) -> None:
    first = _open(database)
    try:
        assert first.applied() == [m.version for m in MIGRATIONS]
        assert first.migrate() == []  # nothing left to apply
    finally:
        first.close()
    again = _open(database)
    try:
        assert again.applied() == [m.version for m in MIGRATIONS]
    finally:
        again.close()


def test_servers_starting_together_apply_each_migration_once(database: str) -> None:
    slow = Migration(999, "slow", "CREATE TABLE applied_once (n int); SELECT pg_sleep(0.3)")
    opened = [_open(database) for _ in range(3)]
    results: list[list[int]] = []
    try:
        threads = [
            threading.Thread(target=lambda d=d: results.append(d.migrate((*MIGRATIONS, slow))))
            for d in opened
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(map(tuple, results)) == [(), (), (999,)]  # one server applied it, the others waited
    finally:
        for d in opened:
            d.close()


def _siftline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "siftline", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )  # fmt: skip


def test_serve_with_an_unreachable_postgres_stops_with_the_fix_and_status_2(postgres: LocalPostgres) -> None:
    url = f"postgresql://postgres@/postgres?host={postgres.root}&port={free_port()}"
    done = _siftline(
        "serve",
        "--port",
        str(free_port()),
        env={"SIFTLINE_STORAGE": "postgres", "SIFTLINE_POSTGRES_URL": url},
    )
    said = " ".join((done.stdout + done.stderr).split())  # the console wraps long lines
    assert done.returncode == 2
    assert (
        "Cannot connect to PostgreSQL" in said and "SIFTLINE_POSTGRES_URL" in said and "Traceback" not in said
    )


def test_serve_on_postgres_without_a_url_names_the_setting() -> None:
    done = _siftline("serve", env={"SIFTLINE_STORAGE": "postgres", "SIFTLINE_POSTGRES_URL": ""})
    assert done.returncode == 2 and "needs SIFTLINE_POSTGRES_URL" in " ".join(
        (done.stdout + done.stderr).split()
    )


def test_serve_postgres_starts_a_local_cluster_serves_on_it_and_stops_it() -> None:
    pg_dir = Path(tempfile.mkdtemp(prefix="siftline-serve-pg-"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "siftline", "serve-postgres", "--pg-dir", str(pg_dir), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and health is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.3)
        assert health is not None and health["storage"] == "postgres"
        assert (pg_dir / "pgdata" / "postmaster.pid").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-2000:]
    assert not (pg_dir / "pgdata" / "postmaster.pid").exists()  # the cluster was stopped
    assert "Traceback" not in out
    shutil.rmtree(pg_dir, ignore_errors=True)
