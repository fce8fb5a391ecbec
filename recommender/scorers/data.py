"""Training sessions as integer rows: the one input every count-based scorer reads.

Items are numbered by sorted ``item_id`` over the items that occur in the sessions, so the numpy
scorers and the Beam co-occurrence job (which reads the same ids from ``items.parquet``) agree on
row numbers without talking to each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recommender.core.errors import Pin2VecError


@dataclass(frozen=True)
class SessionData:
    """Sessions as flat item rows plus offsets, over a sorted vocabulary.

    ``rows[offsets[s]:offsets[s + 1]]`` are session ``s``'s items in time order; ``item_ids[r]``
    is row ``r``'s id and ``counts[r]`` its occurrences in the sessions.
    """

    item_ids: pa.Array  # string, sorted
    rows: np.ndarray  # int32 [tokens]
    offsets: np.ndarray  # int64 [sessions + 1]
    counts: np.ndarray  # int64 [V]

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    def parents(self) -> np.ndarray:
        """int64 [tokens]: the session of each token."""
        return np.repeat(np.arange(self.n_sessions), np.diff(self.offsets))

    def popularity_order(self) -> np.ndarray:
        """Rows by count descending, ties by row (the order popular fills use)."""
        return np.lexsort((np.arange(self.n_items), -self.counts))

    def row_of(self, ids) -> np.ndarray:
        """Rows of string ids (``-1`` for ids not in the vocabulary)."""
        found = pc.index_in(pa.array(ids, pa.string()) if not isinstance(ids, pa.Array) else ids,
                            value_set=self.item_ids)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def from_lists(items: pa.Array | pa.ChunkedArray | list, vocabulary: pa.Array | None = None
               ) -> SessionData:
    """:class:`SessionData` of a list<string> column (or a Python list of lists).

    ``vocabulary`` (sorted string ids) fixes the row numbers; items outside it are dropped from
    their sessions. Without it, the vocabulary is the sorted distinct ids of ``items``.
    """
    if isinstance(items, list):
        items = pa.array(items, pa.list_(pa.string()))
    if isinstance(items, pa.ChunkedArray):
        items = items.combine_chunks() if items.num_chunks else pa.array([], pa.list_(pa.string()))
    items = items.cast(pa.list_(pa.string()))
    flat = pc.list_flatten(items)
    lengths = pc.list_value_length(items).fill_null(0).to_numpy(zero_copy_only=False)
    if vocabulary is None:
        vocabulary = pc.unique(flat)
        vocabulary = vocabulary.take(pc.sort_indices(vocabulary))
    rows = pc.index_in(flat, value_set=vocabulary).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    known = ~np.isnan(rows) if rows.dtype.kind == "f" else np.ones(len(rows), bool)
    if not known.all():  # drop unknown items and shorten their sessions
        parent = np.repeat(np.arange(len(lengths)), lengths)
        lengths = np.bincount(parent[known], minlength=len(lengths))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        rows = rows[known]
    rows = np.asarray(rows, dtype=np.int32)
    counts = np.bincount(rows, minlength=len(vocabulary)).astype(np.int64)
    return SessionData(vocabulary, rows, offsets, counts)


def compact(data: SessionData) -> SessionData:
    """``data`` without vocabulary rows that never occur (row numbers change)."""
    used = data.counts > 0
    if used.all():
        return data
    remap = np.cumsum(used) - 1
    ids = data.item_ids.filter(pa.array(used))
    return SessionData(ids, remap[data.rows].astype(np.int32), data.offsets, data.counts[used])


def from_sessions_dir(directory: str | Path) -> SessionData:
    """:class:`SessionData` of a SESSIONS dir (every session; items sorted by id)."""
    from recommender.core.sessions import iter_session_batches

    parts = [b.column(0) for b in iter_session_batches(directory, ("items",), 262_144)]
    if not parts:
        raise Pin2VecError(f"{directory} holds no sessions")
    return from_lists(pa.chunked_array(parts, pa.list_(pa.string())))
