"""The related-item table: every item's top-K from a search backend, batch by batch.

Both table engines -- the in-process one here (a thread pool) and the Beam fan-out in
``pipeline/table_job.py`` -- call :class:`TableQuerier` on the same fixed row ranges from
:func:`batch_ranges`, so they ask the backend the same queries and re-score the answers with the
same float arithmetic: for a deterministic backend (exact, Annoy) the tables are byte-identical.
Workers receive a :class:`TableSpec` (paths and numbers only), open the backend's file themselves
(Annoy memory-maps it) and memory-map the vectors.

In-process parallelism is one standard thread pool: the exact backend's matrix products and
selection, Annoy's tree search and hnswlib's graph search all run outside the GIL. Threads end
with the process, so nothing outlives ``pin2vec index`` (the earlier worker subprocesses could).

Padding: when fewer than K other items can be returned (a catalogue smaller than K + 1, or an ANN
finding fewer candidates), the row ends in neighbour ``-1`` with score ``NaN``.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from recommender.core.artifacts import save_npy, write_parquet
from recommender.core.progress import progress_bar
from recommender.core.vectors import unit_rows
from recommender.index.exact import one_blas_thread

log = logging.getLogger(__name__)

PAD_NEIGHBOR = -1
PAD_SCORE = float("nan")
SEARCH_METRIC = {"angular": "cosine", "dot": "dot"}  # manifest metric -> backend metric


@dataclass(frozen=True)
class TableSpec:
    """What a worker needs to compute rows of the table (plain values, cheap to pickle).

    ``query_path`` holds the vectors the queries are made from (input vectors); ``item_path`` the
    vectors neighbours are scored against (input vectors for ``angular``, context vectors for
    ``dot``). ``ann_path`` is the backend's file ("" for the exact backend); ``settings`` its
    query settings (default: Annoy with ``search_k``); ``candidates`` how many leading rows of
    ``item_path`` the backend holds (cold rows after them are query-only).
    """

    ann_path: str
    query_path: str
    item_path: str
    dim: int
    metric: str  # "angular" (cosine) | "dot"
    k: int
    search_k: int | None = None
    backend: str = "annoy"
    settings: dict = field(default_factory=dict)
    candidates: int | None = None  # rows [0, candidates) of item_path are searched; None: all

    def backend_settings(self) -> dict:
        if self.settings:
            return dict(self.settings)
        return {"search_k": self.search_k, "trees": None}


def batch_ranges(n_items: int, batch_size: int) -> list[tuple[int, int]]:
    """Half-open row ranges ``[start, end)`` covering ``n_items`` in batches of ``batch_size``."""
    return [(s, min(s + batch_size, n_items)) for s in range(0, n_items, batch_size)]


def score_rows(queries: np.ndarray, items: np.ndarray, nbrs: np.ndarray, metric: str):
    """Exact scores of candidate rows ``nbrs`` [n, K], sorted best first (ties: lower row).

    ``metric`` is ``angular`` (cosine) or ``dot``. Returns (neighbours int32, scores float32),
    padding ``-1`` / NaN last.
    """
    nbrs = np.asarray(nbrs, dtype=np.int32)
    valid = nbrs >= 0
    q = np.asarray(queries, dtype=np.float32)
    cand = np.asarray(items[np.where(valid, nbrs, 0)], dtype=np.float32)
    if metric == "angular":
        q, cand = unit_rows(q), unit_rows(cand)
    scores = np.einsum("bd,bkd->bk", q, cand).astype(np.float32)
    scores[~valid] = -np.inf
    # Best first; equal scores by row id; padding (-inf for the sort) last.
    order = np.lexsort((np.where(valid, nbrs, np.iinfo(np.int32).max), -scores), axis=1)
    nbrs = np.take_along_axis(nbrs, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    scores[nbrs < 0] = PAD_SCORE
    return nbrs, scores


def top_rows(backend, queries, items, rows, k: int, metric: str):
    """The table rows of items ``rows`` (with input vectors ``queries``): the backend's
    candidates (``k`` plus its overfetch), re-scored exactly, best ``k`` kept."""
    found = backend.neighbors(queries, k + backend.overfetch, rows)
    nbrs, scores = score_rows(queries, items, found, metric)
    return np.ascontiguousarray(nbrs[:, :k]), np.ascontiguousarray(scores[:, :k])


class TableQuerier:
    """Opens the backend once (per process) and answers :meth:`query` for row ranges.

    Pass ``backend`` to reuse one that is already open (the build's own, e.g. an in-memory HNSW
    graph); otherwise it is opened from ``spec``.
    """

    def __init__(self, spec: TableSpec, backend=None):
        from recommender.index.backends import get_backend

        self.spec = spec
        self.queries = np.load(spec.query_path, mmap_mode="r", allow_pickle=False)
        self.items = np.load(spec.item_path, mmap_mode="r", allow_pickle=False)
        if spec.candidates is not None:  # cold rows after them are query-only
            self.items = self.items[: spec.candidates]
        if backend is None:
            cls = get_backend(spec.backend)
            path = Path(spec.ann_path) if spec.ann_path else None
            backend = cls.open(path, self.items, SEARCH_METRIC[spec.metric],
                               spec.backend_settings())
        self.backend = backend

    def query(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-K other items of rows ``start..end-1``: neighbours int32 and scores float32 [n, K].

        Rows are sorted best first by the exact score (cosine for ``angular``, inner product for
        ``dot``), ties broken by the lower row id, so the order does not depend on the backend's
        internal rounding.
        """
        queries = np.asarray(self.queries[start:end], dtype=np.float32)
        return top_rows(self.backend, queries, self.items, np.arange(start, end), self.spec.k,
                        self.spec.metric)


def compute_table(
    spec: TableSpec,
    n_items: int,
    batch_size: int,
    n_jobs: int = -1,
    progress: bool = True,
    min_rows_per_worker: int = 0,
    backend=None,
) -> tuple[np.ndarray, np.ndarray]:
    """The whole table on this machine: (neighbours int32 [V, K], scores float32 [V, K]).

    Batches of rows go to a pool of ``n_jobs`` threads (-1 = all cores) sharing one
    :class:`TableQuerier`; every backend searches outside the GIL. ``min_rows_per_worker`` is
    kept for callers of the former process engine and ignored.
    """
    ranges = batch_ranges(n_items, batch_size)
    workers = max(1, min((os.cpu_count() or 1) if n_jobs == -1 else n_jobs, len(ranges)))
    nbrs = np.empty((n_items, spec.k), dtype=np.int32)
    scores = np.empty((n_items, spec.k), dtype=np.float32)
    querier = TableQuerier(spec, backend)
    found = None  # candidates of every row at once, from a backend that has a shortcut

    def run(bounds):
        start, end = bounds
        if found is None:
            nbrs[start:end], scores[start:end] = querier.query(start, end)
        else:  # re-scored with the same arithmetic as any backend's candidates
            queries = np.asarray(querier.queries[start:end], dtype=np.float32)
            nbrs[start:end], scores[start:end] = score_rows(queries, querier.items,
                                                            found[start:end], spec.metric)
        return end - start

    bar = progress_bar(total=n_items, enabled=progress, desc="related table", unit="item")
    with bar, one_blas_thread():
        # The exact backend's cosine table (symmetric tiles, half the products); None elsewhere.
        shortcut = getattr(querier.backend, "self_table", None)
        if shortcut is not None and n_items == len(querier.items):
            found = shortcut(spec.k, n_jobs, bar.update)
        step = bar.update if found is None else (lambda count: None)  # the shortcut reported
        if workers == 1:
            for bounds in ranges:
                step(run(bounds))
            return nbrs, scores
        pool = ThreadPoolExecutor(workers, thread_name_prefix="related-table")
        try:
            for done in as_completed([pool.submit(run, r) for r in ranges]):
                step(done.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return nbrs, scores


def related_frame(item_ids, nbrs: np.ndarray, scores: np.ndarray) -> pa.Table:
    """The table in long form: ``item_id``, ``rank`` (1 = best), ``related_item_id``, ``score``.

    ``item_ids``: a list of strings or a string ``pa.Array``. Padding entries (neighbour -1) are
    left out, so an item may have fewer than K rows.
    """
    ids = item_ids if isinstance(item_ids, pa.Array) else pa.array(item_ids, pa.string())
    rows, cols = np.nonzero(nbrs >= 0)
    return pa.table(
        {
            "item_id": ids.take(pa.array(rows.astype(np.int64))),
            "rank": pa.array((cols + 1).astype(np.int32)),
            "related_item_id": ids.take(pa.array(nbrs[rows, cols].astype(np.int64))),
            "score": pa.array(scores[rows, cols].astype(np.float32)),
        }
    )


def write_table(
    output_dir: str | Path, item_ids: list[str], nbrs: np.ndarray, scores: np.ndarray
) -> None:
    """Write ``neighbors.npy``, ``scores.npy`` and ``related.parquet`` atomically."""
    output_dir = Path(output_dir)
    save_npy(output_dir / "neighbors.npy", nbrs.astype(np.int32, copy=False))
    save_npy(output_dir / "scores.npy", scores.astype(np.float32, copy=False))
    write_parquet(output_dir / "related.parquet", related_frame(item_ids, nbrs, scores))


