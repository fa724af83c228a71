"""Several servers over one database, at the storage level: each sees the others alive while their
heartbeats run and gone once they stop; a job's lease is held by one server at a time; recovery fails
only the unfinished work of servers that are gone."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from siftline.models import Namespace
from siftline.storage.postgres.backend import PostgresStorage
from siftline.testing.contract import new_namespace
from siftline.testing.records_contract import make_record

LEASE_S = 1.0  # heartbeats every 0.2 s
HOLDER = """
import sys, time
from siftline.storage.postgres.backend import PostgresStorage
storage = PostgresStorage(sys.argv[1], pool_size=2)
with storage.lease("recovery") as held:
    print("held" if held else "refused", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def pair(database: str) -> Iterator[tuple[PostgresStorage, PostgresStorage]]:
    a = PostgresStorage(database, pool_size=3, lease_s=LEASE_S)
    b = PostgresStorage(database, pool_size=3, lease_s=LEASE_S)
    try:
        yield a, b
    finally:
        b.close()
        a.close()


def stop_heartbeat(server: PostgresStorage) -> None:
    """What kill -9 does to a server's heartbeat: it stops, the row stays."""
    server._heartbeat_stop.set()
    server._heartbeat_thread.join(5)


def test_each_server_sees_the_other_alive_while_it_beats_and_gone_after(
    pair: tuple[PostgresStorage, PostgresStorage],
) -> None:
    a, b = pair
    assert a.server_id != b.server_id
    time.sleep(2 * LEASE_S)  # several lease periods: the heartbeats keep both alive
    assert a.server_alive(b.server_id) and b.server_alive(a.server_id)

    stop_heartbeat(a)
    time.sleep(1.5 * LEASE_S)
    assert not b.server_alive(a.server_id)
    assert a.server_alive(a.server_id)  # a server never counts itself gone


def test_a_graceful_stop_is_seen_at_once(database: str) -> None:
    a = PostgresStorage(database, pool_size=2, lease_s=60)
    b = PostgresStorage(database, pool_size=2, lease_s=60)
    try:
        assert b.server_alive(a.server_id)
        a.close()
        assert not b.server_alive(a.server_id)
    finally:
        b.close()


def test_a_job_lease_is_held_by_one_server_at_a_time_and_freed_by_its_death(
    pair: tuple[PostgresStorage, PostgresStorage], database: str
) -> None:
    a, b = pair
    with a.lease("recovery") as held_by_a:
        assert held_by_a
        with b.lease("recovery") as held_by_b:
            assert not held_by_b
        with b.lease("retention") as other_job:
            assert other_job
    with b.lease("recovery") as held_by_b:
        assert held_by_b

    # a server killed while it holds a lease releases it with its connections
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, database], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with b.lease("recovery") as held_by_b:
            assert not held_by_b
    finally:
        holder.kill()
        holder.wait(10)
    deadline = time.monotonic() + 10
    while True:
        with b.lease("recovery") as held_by_b:
            if held_by_b or time.monotonic() > deadline:
                break
        time.sleep(0.05)
    assert held_by_b


def test_recovery_fails_only_the_work_of_servers_that_are_gone(
    pair: tuple[PostgresStorage, PostgresStorage],
) -> None:
    a, b = pair
    ns: Namespace = new_namespace(a, "alpha")
    of_a = make_record(ns, 1, status="processing", owner=a.server_id)
    of_b = make_record(ns, 2, status="processing", owner=b.server_id)
    a.save_execution(of_a)
    b.save_execution(of_b)

    assert b.fail_unfinished("gone") == 0 and a.fail_unfinished("gone") == 0  # both alive

    stop_heartbeat(a)
    time.sleep(1.5 * LEASE_S)
    assert b.fail_unfinished("the server stopped") == 1
    assert b.get_execution(ns.namespace_id, of_a.execution_id).status == "failed"  # type: ignore[union-attr]
    assert b.get_execution(ns.namespace_id, of_b.execution_id) == of_b
