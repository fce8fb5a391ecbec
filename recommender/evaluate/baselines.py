"""The two baselines every related-items model must beat: most-popular and item-item co-occurrence.

Both are built from training sessions only and return a dense table ``[V, K]`` of row ids over their
own vocabulary (``-1`` where a row has fewer than K candidates), the same shape as the model's
``neighbors.npy``, so one scorer evaluates all three.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class ItemCounter:
    """Accumulates a vocabulary, item counts and windowed co-occurrence counts over session batches.

    Parameters
    ----------
    window : int
        Two items co-occur when they are at most ``window`` positions apart in one session
        (``0`` = anywhere in the session). Self-pairs (``a ... a``) are not counted.
    """

    def __init__(self, window: int = 5):
        self.window = window
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        self._counts: list[np.ndarray] = []
        self._pairs: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, items: pa.ListArray | pa.ChunkedArray) -> None:
        """Add one batch of sessions (a list<string> column)."""
        if isinstance(items, pa.ChunkedArray):
            for chunk in items.chunks:
                self.add(chunk)
            return
        flat = pc.list_flatten(items).to_numpy(zero_copy_only=False)
        if len(flat) == 0:
            return
        parents = pc.list_parent_indices(items).to_numpy()
        rows = self._rows(flat)
        self._counts.append(np.bincount(rows, minlength=len(self._ids)))
        n = len(rows)
        span = self.window if self.window > 0 else int(np.diff(items.offsets.to_numpy()).max())
        keys, weights = [], []
        for offset in range(1, min(span, n - 1) + 1):
            same = parents[:-offset] == parents[offset:]
            a, b = rows[:-offset][same], rows[offset:][same]
            keep = a != b
            keys += [a[keep], b[keep]]
            weights += [b[keep], a[keep]]
        if keys:
            key = np.concatenate(keys).astype(np.int64)
            other = np.concatenate(weights).astype(np.int64)
            self._pairs.append((key, other))

    def _rows(self, flat: np.ndarray) -> np.ndarray:
        index = self._index
        rows = np.empty(len(flat), dtype=np.int64)
        for i, item in enumerate(flat):  # dict lookups; evaluation-sized data only
            row = index.get(item)
            if row is None:
                row = index[item] = len(self._ids)
                self._ids.append(item)
            rows[i] = row
        return rows

    @property
    def item_ids(self) -> list[str]:
        return self._ids

    def counts(self) -> np.ndarray:
        """Engagements per vocabulary row."""
        total = np.zeros(len(self._ids), dtype=np.int64)
        for c in self._counts:
            total[: len(c)] += c
        return total

    def popular_table(self, k: int) -> np.ndarray:
        """Most-popular: the same top-K most engaged items for every query, minus the query."""
        counts = self.counts()
        v = len(counts)
        top = _by_popularity(counts)[: k + 1]
        table = np.full((v, k), -1, dtype=np.int32)
        row = np.arange(v)
        # Each row drops itself if it is among the top k+1, else keeps the first k.
        own = top[None, :] == row[:, None]
        keep = ~own
        keep[~own.any(axis=1), k:] = False
        cols = np.cumsum(keep, axis=1) - 1
        r, c = np.nonzero(keep)
        table[r, cols[r, c]] = top[c]
        return table

    def cooccurrence_table(self, k: int) -> np.ndarray:
        """Items seen most often near each item; ties and short rows filled by popularity."""
        counts = self.counts()
        v = len(counts)
        table = np.full((v, k), -1, dtype=np.int32)
        if self._pairs:
            a = np.concatenate([p[0] for p in self._pairs])
            b = np.concatenate([p[1] for p in self._pairs])
            keys, n = np.unique(a * v + b, return_counts=True)
            a, b = keys // v, keys % v
            # Sort by query, then count desc, then popularity desc, then row for determinism.
            order = np.lexsort((b, -counts[b], -n, a))
            a, b = a[order], b[order]
            first = np.searchsorted(a, a, side="left")
            rank = np.arange(len(a)) - first
            keep = rank < k
            table[a[keep], rank[keep]] = b[keep]
        _pad_with_popular(table, _by_popularity(counts))
        return table


def _by_popularity(counts: np.ndarray) -> np.ndarray:
    return np.lexsort((np.arange(len(counts)), -counts))


def _pad_with_popular(table: np.ndarray, popular: np.ndarray) -> None:
    k = table.shape[1]
    fill = popular[: 2 * k + 1]
    for row in np.nonzero(table[:, -1] < 0)[0]:
        have = table[row][table[row] >= 0]
        seen = set(have.tolist())
        seen.add(int(row))
        extra = [p for p in fill.tolist() if p not in seen][: k - len(have)]
        table[row, len(have) : len(have) + len(extra)] = extra


def counter_from_sessions(sessions: Iterable[list[str]], window: int = 5) -> ItemCounter:
    """An :class:`ItemCounter` over in-memory sessions (convenience for tests and small data)."""
    counter = ItemCounter(window)
    counter.add(pa.array(list(sessions), pa.list_(pa.string())))
    return counter
