"""The RecordStore and Servers contracts run on the SQLite backend."""

from __future__ import annotations

from siftline.testing.records_contract import RecordStoreContract
from siftline.testing.servers_contract import ServersContract


class TestSQLiteRecordStore(RecordStoreContract):
    pass


class TestSQLiteServers(ServersContract):
    pass
