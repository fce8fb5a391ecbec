"""Item pairs within a window of each session, counted without a Python loop per pair.

A session ``[x0, x1, ..., xn]`` yields the pair ``(x_i, x_j)`` for every ``0 < j - i <= window``
(``window = 0``: the whole session, up to :data:`WHOLE_SESSION_SPAN` positions apart). The pairs
are generated one distance at a time over the positions whose session still has an item that far
ahead, so a pass costs the pairs it yields, not the tokens, and aggregated by sorting packed int64
keys ``a * V + b``.

``directed=True`` keeps "b came after a" only (sequential rules); undirected pairs are
aggregated once as (min, max) and mirrored at the end, which halves the sort. Weights: 1, or
``1 / distance``. Pairs of an item with itself are never counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# window=0 ("whole session") counts pairs at most this many positions apart: a session of n items
# would otherwise yield n(n-1)/2 pairs, and one 10,000-item bot session would dominate the memory.
WHOLE_SESSION_SPAN = 100


@dataclass(frozen=True)
class PairCounts:
    """Aggregated pairs: ``weights[i]`` for the pair ``(a[i], b[i])``, sorted by ``(a, b)``."""

    a: np.ndarray  # int32
    b: np.ndarray  # int32
    weights: np.ndarray  # float64
    n_items: int

    def keys(self) -> np.ndarray:
        return self.a.astype(np.int64) * self.n_items + self.b

    def lookup(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Weights of the pairs ``(a[i], b[i])`` (0 where the pair was never seen)."""
        keys = self.keys()
        want = np.asarray(a, np.int64) * self.n_items + np.asarray(b, np.int64)
        pos = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
        if len(keys) == 0:
            return np.zeros(len(want))
        return np.where(keys[pos] == want, self.weights[pos], 0.0)

    def row_totals(self) -> np.ndarray:
        """Sum of weights per ``a`` (the query item's count evidence)."""
        return np.bincount(self.a, weights=self.weights, minlength=self.n_items)


def effective_span(window: int, max_length: int) -> int:
    """Largest distance counted: ``window``, or for ``window=0`` the session length, capped."""
    if window > 0:
        return min(window, max(max_length - 1, 0))
    span = max(max_length - 1, 0)
    if span > WHOLE_SESSION_SPAN:
        log.warning("window=0: sessions of up to %d items; pairs are counted at most %d positions "
                    "apart (WHOLE_SESSION_SPAN) to bound memory", max_length, WHOLE_SESSION_SPAN)
    return min(span, WHOLE_SESSION_SPAN)


def window_pairs(
    rows: np.ndarray,
    offsets: np.ndarray,
    window: int,
    directed: bool,
    weighting: str = "none",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw (unaggregated) pairs ``(a, b, weight)`` of sessions given as flat rows + offsets.

    Undirected pairs come back canonical (``a < b``); directed ones as (earlier, later).
    """
    rows = np.asarray(rows, dtype=np.int64)
    lengths = np.diff(offsets)
    if len(rows) == 0 or lengths.max(initial=0) < 2:
        empty = np.empty(0, np.int64)
        return empty, empty, np.empty(0)
    span = effective_span(window, int(lengths.max()))
    # ahead[p]: how many items of p's session come after position p.
    ends = np.repeat(offsets[1:], lengths)
    ahead = ends - np.arange(len(rows)) - 1
    by_ahead = np.argsort(-ahead, kind="stable")
    n_ahead = np.bincount(np.minimum(ahead, span + 1), minlength=span + 2)
    at_least = np.cumsum(n_ahead[::-1])[::-1]  # at_least[d] = positions with ahead >= d
    a_parts, b_parts, w_parts = [], [], []
    for d in range(1, span + 1):
        pos = by_ahead[: at_least[d]]
        a, b = rows[pos], rows[pos + d]
        keep = a != b
        a, b = a[keep], b[keep]
        if not directed:
            a, b = np.minimum(a, b), np.maximum(a, b)
        a_parts.append(a)
        b_parts.append(b)
        w_parts.append(np.full(len(a), 1.0 / d if weighting == "distance" else 1.0))
    return np.concatenate(a_parts), np.concatenate(b_parts), np.concatenate(w_parts)


def aggregate_keys(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``weights`` per distinct int64 key: (sorted distinct keys, sums)."""
    if len(keys) == 0:
        return np.empty(0, np.int64), np.empty(0)
    order = np.argsort(keys, kind="stable")
    keys, weights = keys[order], weights[order]
    starts = np.concatenate([[0], np.nonzero(keys[1:] != keys[:-1])[0] + 1])
    return keys[starts], np.add.reduceat(weights, starts)


def distinct_per_session(rows: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each session's distinct items (order of first... any order): rows + offsets.

    Item-kNN and EASE see a session as a set (its row of the binary session x item matrix).
    """
    lengths = np.diff(offsets)
    parent = np.repeat(np.arange(len(lengths)), lengths)
    n = int(rows.max(initial=0)) + 1
    keys = np.unique(parent * n + rows.astype(np.int64))
    parent, items = keys // n, keys % n
    new_lengths = np.bincount(parent, minlength=len(lengths))
    return items.astype(np.int32), np.concatenate([[0], np.cumsum(new_lengths)]).astype(np.int64)


def count_pairs(
    rows: np.ndarray,
    offsets: np.ndarray,
    n_items: int,
    window: int = 5,
    directed: bool = False,
    weighting: str = "none",
    binary: bool = False,
    chunk_tokens: int = 2_000_000,
) -> PairCounts:
    """Aggregate the pairs of all sessions, ``chunk_tokens`` tokens of sessions at a time.

    ``binary=True`` counts each pair of distinct items once per session (sessions as sets,
    whole session): the co-occurrence part of the Gram matrix of the session x item matrix.
    Undirected results hold both ``(a, b)`` and ``(b, a)``.
    """
    if binary:
        rows, offsets = distinct_per_session(rows, offsets)
        window, weighting = 0, "none"
    keys_acc, w_acc = [], []
    n_sessions = len(offsets) - 1
    start = 0
    while start < n_sessions:  # whole sessions per chunk
        end = int(np.searchsorted(offsets, offsets[start] + chunk_tokens, side="right")) - 1
        end = min(max(end, start + 1), n_sessions)
        lo, hi = offsets[start], offsets[end]
        a, b, w = window_pairs(rows[lo:hi], offsets[start : end + 1] - lo, window, directed,
                               weighting)
        k, s = aggregate_keys(a * n_items + b, w)
        keys_acc.append(k)
        w_acc.append(s)
        if sum(len(x) for x in keys_acc) > 4 * chunk_tokens:  # merge partial sums early
            k, s = aggregate_keys(np.concatenate(keys_acc), np.concatenate(w_acc))
            keys_acc, w_acc = [k], [s]
        start = end
    keys, weights = (aggregate_keys(np.concatenate(keys_acc), np.concatenate(w_acc))
                     if keys_acc else (np.empty(0, np.int64), np.empty(0)))
    if not directed:
        a, b = keys // n_items, keys % n_items
        keys, weights = aggregate_keys(np.concatenate([keys, b * n_items + a]),
                                       np.concatenate([weights, weights]))
    return PairCounts((keys // n_items).astype(np.int32), (keys % n_items).astype(np.int32),
                      weights, n_items)
