"""Small document writes that arrive together are committed together (group commit).

SQLite has one writer. Under concurrent load a single-document write held the write lock about 20 ms
(1-2 ms alone): between its dozen SQL statements its thread waits for the GIL while searches run. So
writes of a few documents queue here; one thread at a time (the *leader*) takes everything queued and
writes it in as few transactions as it can, and every waiting request gets its own outcome.

Each request keeps its semantics: a create (``replace=False``) of an id that exists fails alone with
``AlreadyExistsError`` (checked inside the combined transaction, so nothing slips in between), requests
are applied in arrival order (two writes of one id go to separate transactions), and when a combined
write fails for another reason its requests are written one by one, so each sees only its own error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from siftline.errors import AlreadyExistsError
from siftline.models import Collection, DocumentWrite

SMALL = 8  # writes of at most this many documents are combined; larger batches go straight through


class Conflict(Exception):
    """Raised inside a combined write (before anything is written) naming ids that must be new but exist."""

    def __init__(self, document_ids: set[str]) -> None:
        super().__init__(f"{len(document_ids)} ids exist")
        self.document_ids = document_ids


# (collection, writes, replace, ids that must be new) -> None
Put = Callable[[Collection, Sequence[DocumentWrite], bool, set[str]], None]


@dataclass
class _Ticket:
    collection: Collection
    writes: Sequence[DocumentWrite]
    replace: bool
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    @property
    def ids(self) -> set[str]:
        return {w.document_id for w in self.writes}


class WriteCombiner:
    def __init__(self, put: Put) -> None:
        self._put = put
        self._queue: list[_Ticket] = []
        self._queue_lock = threading.Lock()
        self._leading = threading.Lock()

    def write(self, collection: Collection, writes: Sequence[DocumentWrite], replace: bool) -> None:
        if len(writes) > SMALL:
            self._put(collection, writes, replace, set())
            return
        ticket = _Ticket(collection, writes, replace)
        with self._queue_lock:
            self._queue.append(ticket)
        while not ticket.done.is_set():
            with self._leading:  # whoever leads writes everything queued, this ticket included
                if not ticket.done.is_set():
                    self._lead()
        if ticket.error is not None:
            raise ticket.error

    def _lead(self) -> None:
        with self._queue_lock:
            tickets, self._queue = self._queue, []
        while tickets:
            group, tickets = _next_group(tickets)
            self._write_group(group)

    def _write_group(self, group: list[_Ticket]) -> None:
        while group:
            first = group[0]
            writes = [w for t in group for w in t.writes]
            must_be_new = {i for t in group if not t.replace for i in t.ids}
            try:
                self._put(first.collection, writes, True, must_be_new)
            except Conflict as conflict:  # those requests fail alone; the others try again
                for t in group:
                    if not t.replace and t.ids & conflict.document_ids:
                        _finish(t, _exists(t, conflict.document_ids))
                group = [t for t in group if not t.done.is_set()]
                continue
            except BaseException as exc:
                if len(group) == 1:
                    _finish(first, exc)
                else:  # one of them is at fault: let each meet its own outcome
                    for t in group:
                        self._write_group([t])
                return
            for t in group:
                _finish(t, None)
            return


def _next_group(tickets: list[_Ticket]) -> tuple[list[_Ticket], list[_Ticket]]:
    """The longest run from the front that can share a transaction: one collection as read at one
    version, and no document id twice (a later write of an id must follow the earlier one)."""
    first = tickets[0]
    group, ids = [first], set(first.ids)
    for t in tickets[1:]:
        if t.collection != first.collection or t.ids & ids:
            break
        group.append(t)
        ids |= t.ids
    return group, tickets[len(group) :]


def _exists(ticket: _Ticket, taken: set[str]) -> AlreadyExistsError:
    names = sorted(ticket.ids & taken)[:5]
    return AlreadyExistsError(
        f"Documents already exist in collection '{ticket.collection.collection_name}': {', '.join(names)}. "
        "Use PUT to replace a document, or omit document_id.",
        {"document_ids": names},
    )


def _finish(ticket: _Ticket, error: BaseException | None) -> None:
    ticket.error = error
    ticket.done.set()
