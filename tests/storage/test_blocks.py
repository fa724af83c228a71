"""Block storage of vectors: writes and reads across block edges give back exactly what was written."""

from __future__ import annotations

import numpy as np

from siftline.storage.sqlite.blocks import BLOCK, BlockMatrix


def test_rows_written_across_blocks_read_back_in_any_order() -> None:
    rng = np.random.default_rng(0)
    total = 2 * BLOCK + 123
    data = rng.standard_normal((total, 3)).astype(np.float32)
    rows = BlockMatrix(3)
    rows.ensure(total)
    assert rows.capacity == 3 * BLOCK
    for start in range(0, total, 50_001):  # writes that straddle block edges
        rows.put(start, data[start : start + 50_001])
    picks = rng.permutation(total)[:5000]
    np.testing.assert_array_equal(rows.take(picks), data[picks])
    np.testing.assert_array_equal(
        rows.take(np.array([BLOCK - 1, BLOCK, 2 * BLOCK])), data[[BLOCK - 1, BLOCK, 2 * BLOCK]]
    )
    spans = list(rows.spans(BLOCK - 5, 2 * BLOCK + 5))
    assert [(s, v.shape[0]) for s, v in spans] == [(BLOCK - 5, 5), (BLOCK, BLOCK), (2 * BLOCK, 5)]
    np.testing.assert_array_equal(np.concatenate([v for _, v in spans]), data[BLOCK - 5 : 2 * BLOCK + 5])
    np.testing.assert_array_equal(np.concatenate(rows.parts(total)), data)
    assert rows.take(np.array([], dtype=np.int64)).shape == (0, 3)
