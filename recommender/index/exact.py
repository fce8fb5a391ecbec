"""Exact nearest neighbours by blocked matrix products, and recall of an approximate table.

Used to measure what Annoy's approximation costs (``recall@10`` in every INDEX manifest) and, for
small catalogues, as the exact related table itself (evaluation, tuning). Memory is bounded: the
score matrix is computed ``block`` query rows at a time, never [n, V] at once.
"""

from __future__ import annotations

import numpy as np

from recommender.core.vectors import unit_rows

BLOCK_BYTES = 128 << 20  # score-matrix block: 128 MiB of float32 at a time


def _top_k(sc: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``kk`` largest entries of each row of ``sc``, best first, ties to the lower column.

    A full ``argpartition`` costs ~25 ns per score, more than the matrix product itself. Instead:
    the kk-th largest of the per-chunk maxima is a lower bound on each row's kk-th largest score
    (kk distinct entries reach it), so only entries at or above it -- usually a few dozen per
    row -- are gathered and sorted.
    """
    b, v = sc.shape
    chunk = int(np.clip(v // (16 * kk), 16, 1024))
    n_chunks = v // chunk
    if n_chunks <= kk:  # small catalogue: plain sort
        order = np.lexsort((np.broadcast_to(np.arange(v), sc.shape), -sc), axis=1)[:, :kk]
        return order.astype(np.int32), np.take_along_axis(sc, order, axis=1)
    maxima = sc[:, : n_chunks * chunk].reshape(b, n_chunks, chunk).max(axis=2)
    if v % chunk:
        maxima = np.concatenate([maxima, sc[:, n_chunks * chunk :].max(axis=1, keepdims=True)], 1)
    m = maxima.shape[1]
    bound = np.partition(maxima, m - kk, axis=1)[:, m - kk]
    rows, cols = np.nonzero(sc >= bound[:, None])
    vals = sc[rows, cols]
    order = np.lexsort((cols, -vals, rows))  # by row, then score desc, then column asc
    rows, cols, vals = rows[order], cols[order], vals[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, np.arange(b))[rows]
    keep = rank < kk
    idx = np.empty((b, kk), dtype=np.int32)
    top = np.empty((b, kk), dtype=sc.dtype)
    idx[rows[keep], rank[keep]] = cols[keep]
    top[rows[keep], rank[keep]] = vals[keep]
    return idx, top


def exact_neighbors(
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    metric: str = "cosine",
    exclude_self_rows: np.ndarray | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` items for each query.

    Parameters
    ----------
    queries : np.ndarray
        float [n, d] query vectors.
    items : np.ndarray
        float [V, d] item vectors (may be a memory map).
    k : int
        Neighbours per query.
    metric : {"cosine", "dot"}
        ``cosine`` normalises both sides; ``dot`` is the raw inner product.
    exclude_self_rows : np.ndarray, optional
        int [n]: for query ``i``, item row ``exclude_self_rows[i]`` is never returned (use the
        query's own row; a negative value excludes nothing).
    block_bytes : int
        Upper bound on the size of one block of the score matrix.

    Returns
    -------
    indices : np.ndarray
        int32 [n, k] item rows, best first; ties go to the lower row. ``-1`` pads rows when fewer
        than ``k`` items are available.
    scores : np.ndarray
        float32 [n, k] cosine similarities or inner products; ``NaN`` where the index is ``-1``.
    """
    if metric not in ("cosine", "dot"):
        raise ValueError(f"metric must be 'cosine' or 'dot', got {metric!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    queries = np.asarray(queries, dtype=np.float32)
    items = np.asarray(items, dtype=np.float32)
    if queries.ndim != 2 or items.ndim != 2 or queries.shape[1] != items.shape[1]:
        raise ValueError(f"shapes {queries.shape} and {items.shape} are not [n, d] and [V, d]")
    n, v = len(queries), len(items)
    if not (np.isfinite(queries).all() and np.isfinite(items).all()):
        raise ValueError("queries and items must be finite (found NaN or inf)")
    if metric == "cosine":
        queries, items = unit_rows(queries), unit_rows(items)
    excl = None if exclude_self_rows is None else np.asarray(exclude_self_rows, dtype=np.int64)
    if excl is not None and excl.shape != (n,):
        raise ValueError(f"exclude_self_rows must have shape ({n},), got {excl.shape}")

    kk = min(k, v)
    out_idx = np.full((n, k), -1, dtype=np.int32)
    out_sc = np.full((n, k), np.nan, dtype=np.float32)
    block = int(max(1, min(n, block_bytes // max(4 * v, 1))))
    for s in range(0, n, block):
        e = min(s + block, n)
        sc = queries[s:e] @ items.T
        if excl is not None:
            r = np.nonzero(excl[s:e] >= 0)[0]
            sc[r, excl[s:e][r]] = -np.inf
        idx, top = _top_k(sc, kk)
        missing = np.isneginf(top)
        idx[missing], top[missing] = -1, np.nan
        out_idx[s:e, :kk], out_sc[s:e, :kk] = idx, top
    return out_idx, out_sc


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean over rows of |approx ∩ exact| / |exact|, ignoring ``-1`` padding.

    ``approx`` and ``exact`` are int [n, k] neighbour rows for the same queries (e.g. the first 10
    columns of a related table and :func:`exact_neighbors` with ``k=10``). Rows whose exact list is
    empty are skipped; with no such row at all the recall is 1.0.
    """
    approx, exact = np.asarray(approx), np.asarray(exact)
    if approx.shape[0] != exact.shape[0]:
        raise ValueError(f"{approx.shape[0]} approximate rows vs {exact.shape[0]} exact rows")
    hits, rows = 0.0, 0
    for a, x in zip(approx.tolist(), exact.tolist()):
        truth = {j for j in x if j >= 0}
        if truth:
            hits += len(truth.intersection(j for j in a if j >= 0)) / len(truth)
            rows += 1
    return hits / rows if rows else 1.0
