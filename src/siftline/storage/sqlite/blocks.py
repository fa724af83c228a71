"""Vectors in fixed-size blocks, so growing never copies what is already stored.

A contiguous matrix that doubles must copy every vector at each doubling (at a million 384-d vectors,
1.5 GB copied, with old and new alive together); blocks of ``BLOCK`` rows are added as needed and
their pages are only touched when written.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

BLOCK = 1 << 16


class BlockMatrix:
    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.blocks: list[np.ndarray] = []

    @property
    def capacity(self) -> int:
        return len(self.blocks) * BLOCK

    def ensure(self, rows: int) -> None:
        while self.capacity < rows:
            self.blocks.append(np.empty((BLOCK, self.dimension), dtype=np.float32))

    def put(self, start: int, rows: np.ndarray) -> None:
        """Write ``rows`` into slots ``start …`` (capacity must be ensured)."""
        for offset, view in self.spans(start, start + rows.shape[0]):
            view[:] = rows[offset - start : offset - start + view.shape[0]]

    def spans(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first slot, view) pieces covering slots ``[start, stop)`` in order."""
        slot = start
        while slot < stop:
            block, row = divmod(slot, BLOCK)
            take = min(stop - slot, BLOCK - row)
            yield slot, self.blocks[block][row : row + take]
            slot += take

    def take(self, slots: np.ndarray) -> np.ndarray:
        """A copy of the rows of ``slots``, in their order."""
        slots = np.asarray(slots, dtype=np.int64)
        out = np.empty((slots.shape[0], self.dimension), dtype=np.float32)
        if slots.size == 0:
            return out
        blocks, rows = np.divmod(slots, BLOCK)
        first, last = int(blocks.min()), int(blocks.max())
        if first == last:
            out[:] = self.blocks[first][rows]
            return out
        for block in np.unique(blocks).tolist():
            where = blocks == block
            out[where] = self.blocks[block][rows[where]]
        return out

    def parts(self, size: int) -> list[np.ndarray]:
        """Views of slots ``[0, size)`` block by block (for saving without a copy)."""
        return [view for _, view in self.spans(0, size)]
