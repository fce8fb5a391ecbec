"""The interface every search backend implements.

A backend indexes one item matrix (input vectors for ``cosine`` scoring, context vectors for
``dot``) and answers approximate or exact top-k queries with item rows. It never scores the final
table: :mod:`recommender.index.table` re-scores every candidate with the same float arithmetic,
whatever the backend, so backends differ only in *which* candidates they find.

Query-time effort (``search_k``, ``ef``) lives in :attr:`Backend.settings`; :meth:`escalate` raises
it one step for the recall calibration in :mod:`recommender.index.build`, rebuilding the structure
when the next step is a build-time setting (Annoy trees, HNSW ``M``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

METRICS = ("cosine", "dot")


class Backend(ABC):
    """One search structure over ``items`` (float32 [V, d])."""

    name: ClassVar[str]
    file_name: ClassVar[str | None] = None  # the file it keeps in the INDEX dir (None: no file)
    # Candidates fetched beyond K for the table: the exact re-scoring then picks the best K, so an
    # approximate backend's near-ties and small misorderings at the K-th place cost nothing.
    overfetch: ClassVar[int] = 2

    def __init__(self, items: np.ndarray, metric: str, settings: dict):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.items = items
        self.metric = metric
        self.settings = dict(settings)

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def require(cls) -> None:
        """Raise ConfigError with an install hint when the backend's library is missing."""

    @classmethod
    def default_settings(cls, n_items: int, dim: int, k: int) -> dict:
        """Settings used when the user gives none."""
        return {}

    @classmethod
    @abstractmethod
    def build(cls, items, metric, settings, path: Path | None, n_jobs=-1, seed=0, progress=True):
        """Build over ``items``, write the backend's file to ``path`` (atomically), return it."""

    @classmethod
    @abstractmethod
    def open(cls, path: Path | None, items, metric, settings):
        """Open a built backend from ``path`` (the file written by :meth:`build`)."""

    # --- queries ---------------------------------------------------------------------------

    @abstractmethod
    def search(self, queries: np.ndarray, k: int, **overrides) -> np.ndarray:
        """int64 [n, k] item rows for each query, best first as far as the backend knows,
        ``-1`` where it found fewer than ``k``. Must be safe to call from several threads.

        ``overrides``: query settings for this call only (e.g. Annoy's ``search_k``); a backend
        ignores the ones it does not have."""

    def count(self) -> int | None:
        """Items in the backend's file (None: no file), to check it against the manifest."""
        return None

    def neighbors(self, queries: np.ndarray, k: int, exclude_rows: np.ndarray) -> np.ndarray:
        """:meth:`search` for ``k`` items other than ``exclude_rows[i]`` (the query's own row)."""
        found = self.search(queries, k + 1)
        drop = found == np.asarray(exclude_rows)[:, None]
        # Rows where the item did not come back: drop the last candidate instead.
        drop[~drop.any(axis=1), -1] = True
        return found[~drop].reshape(len(found), k)

    # --- calibration ------------------------------------------------------------------------

    def escalate(self, path: Path | None, n_jobs=-1, seed=0, progress=True) -> str | None:
        """Raise the search effort one step (rebuilding into ``path`` if needed).

        Returns a short description of the step (``"search_k 3200 -> 6400"``), or None when
        there is no further step.
        """
        return None

    def close(self) -> None:
        """Release the backend's file (memory maps, native index)."""


def auto_threads(n_jobs: int) -> int:
    """``n_jobs`` with -1 meaning every core."""
    import os

    return (os.cpu_count() or 1) if n_jobs == -1 else max(1, int(n_jobs))
