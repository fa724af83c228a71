"""The Servers protocol, every backend: this storage names its server, knows it alive, and leases
background jobs one holder at a time."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from siftline.storage.base import Storage


def dead_server_id() -> str:
    """The id a server on this host would have had, whose process has exited (no backend may count it
    alive: not by its process, not by a heartbeat)."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return f"{socket.gethostname()}:{done.pid}:000000"


class ServersContract:
    """A subclass provides ``open_storage`` (a callable returning a new Storage over one location)."""

    @pytest.fixture
    def storage(self, open_storage: Callable[[], Storage]) -> Storage:
        return open_storage()

    def test_this_server_is_named_and_alive_and_no_other_is(self, storage: Storage) -> None:
        assert isinstance(storage.server_id, str) and storage.server_id
        assert storage.server_alive(storage.server_id)
        assert not storage.server_alive(None)
        assert not storage.server_alive(dead_server_id())

    def test_a_held_lease_is_refused_until_released(self, storage: Storage) -> None:
        with storage.lease("recovery") as first:
            assert first is True
            with storage.lease("recovery") as second:
                assert second is False
            with storage.lease("retention") as other_job:
                assert other_job is True
        with storage.lease("recovery") as again:
            assert again is True

    def test_a_lease_held_by_another_thread_is_refused_and_released_after_an_error(
        self, storage: Storage
    ) -> None:
        taken, release = threading.Event(), threading.Event()
        outcome: list[bool] = []

        def hold() -> None:
            with storage.lease("recovery") as held:
                outcome.append(held)
                taken.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert taken.wait(10)
        with storage.lease("recovery") as mine:
            assert mine is False
        release.set()
        holder.join(10)
        assert outcome == [True]

        with pytest.raises(RuntimeError), storage.lease("recovery") as held:
            assert held
            raise RuntimeError("the job failed")
        with storage.lease("recovery") as after:
            assert after is True
