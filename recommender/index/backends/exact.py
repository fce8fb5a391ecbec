"""Exact search: blocked matrix products over the item vectors, no index file.

The cheapest backend for small and medium catalogues: the whole table costs ``V^2 * d``
multiply-adds with no build step, and its recall is 1 by construction. Cosine scoring normalises the
items once when the backend is opened.
"""

from __future__ import annotations

import numpy as np

from recommender.core.vectors import unit_rows
from recommender.index.backends.base import Backend
from recommender.index.exact import self_top_k, top_k_dot


class ExactBackend(Backend):
    name = "exact"
    file_name = None
    overfetch = 0  # exact: the top K is the top K, ties already to the lower row

    def __init__(self, items, metric, settings):
        super().__init__(items, metric, settings)
        items = np.asarray(items, dtype=np.float32)
        self._items = unit_rows(items).astype(np.float32) if metric == "cosine" else items

    @classmethod
    def build(cls, items, metric, settings, path=None, n_jobs=-1, seed=0, progress=True):
        return cls(items, metric, settings)

    @classmethod
    def open(cls, path, items, metric, settings):
        return cls(items, metric, settings)

    def _queries(self, queries):
        queries = np.asarray(queries, dtype=np.float32)
        return unit_rows(queries).astype(np.float32) if self.metric == "cosine" else queries

    def search(self, queries: np.ndarray, k: int, **overrides) -> np.ndarray:
        idx, _ = top_k_dot(self._queries(queries), self._items, k)
        return idx.astype(np.int64)

    def self_table(self, k: int, n_jobs: int = -1, on_rows=None) -> np.ndarray | None:
        """int64 [V, k]: every item's top-``k`` other items, or None where no shortcut applies.

        Cosine scores are symmetric, so the whole table costs half the matrix products of
        querying every item (:func:`~recommender.index.exact.self_top_k`); ``dot`` scoring
        (input x context vectors) is not symmetric and goes row by row.
        """
        if self.metric != "cosine":
            return None
        idx, _ = self_top_k(self._items, k, n_jobs, on_rows)
        return idx.astype(np.int64)

    def neighbors(self, queries: np.ndarray, k: int, exclude_rows: np.ndarray) -> np.ndarray:
        excl = np.asarray(exclude_rows, dtype=np.int64)
        idx, _ = top_k_dot(self._queries(queries), self._items, k, excl)
        return idx.astype(np.int64)


BACKEND = ExactBackend
