"""Exact nearest neighbours by blocked matrix products, and recall of an approximate table.

The exact backend's table, the recall check in every INDEX manifest, the evaluation's exact
neighbours and the session queries of an index without an ANN file all come from
:func:`exact_neighbors`. It never holds the [n, V] score matrix: queries are taken ``rows`` at a
time and scored against the catalogue one column *tile* at a time (a tile of scores fits in cache),
and each tile is reduced to the few entries that can still enter the top-k before the next one is
computed.

Selection per tile (the slow part of a naive version is ``argpartition`` over wide rows, ~25 ns a
score, three times the matrix product): the tile's columns are split into 64 interleaved groups
and the maximum of each group is taken (one vectorised pass over the tile). Only groups whose
maximum beats the row's current k-th best score are gathered; after the first tiles that is a
handful per row. In the first tile, where there is no k-th best yet, the k-th largest group maximum
is the bound: k distinct entries reach it, so it is a lower bound on the k-th best score.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from recommender.core.vectors import unit_rows

__all__ = ["exact_neighbors", "top_k_dot", "self_top_k", "recall", "unit_rows", "one_blas_thread",
           "BLOCK_BYTES"]

BLOCK_BYTES = 8 << 20  # one tile of scores (rows x columns float32): stays in the 32 MiB L3
GROUP = 16  # entries per interleaved column group; the groups' maxima screen a tile
# Widest tile. Wide tiles matter on trained vectors (all in a narrow cone): the first tile sets
# the running k-th best, and a narrow one sets it low (18k dense-log vectors: 4096 columns cost
# 4x the CPU of 16384).
TILE_COLUMNS = 16_384


def one_blas_thread():
    """Context: BLAS uses one thread per caller while our own threads split the work.

    The products here are tiles of a few MB; letting OpenBLAS thread each of them as well costs
    2.5x the CPU time (spinning workers) for no gain in wall time on two busy cores. A no-op if
    threadpoolctl is missing.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


_PAD_KEY = np.iinfo(np.int64).max


def _keys(vals: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """int64 sort keys: ascending key = score descending, then column ascending.

    The float32 score's bits, mapped so that integer order is float order (negative floats have
    their magnitude bits flipped), form the high half; the column the low half.
    """
    neg = -(vals.astype(np.float32) + np.float32(0))  # + 0 turns -0.0 into 0.0: one zero
    bits = neg.view(np.int32).astype(np.int64)
    bits = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return bits * (1 << 32) + cols


def _unkey(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores float32, columns int64) of :func:`_keys` output (padding not handled)."""
    hi = keys >> 32
    bits = np.where(hi < 0, hi ^ 0x7FFFFFFF, hi).astype(np.int32)
    return -bits.view(np.float32), keys & 0xFFFFFFFF


def _merge(best_v, best_i, rows, cols, vals, kk) -> None:
    """Merge candidate entries into the running top-``kk`` of their rows (in place).

    ``rows`` is sorted. Rows of ``best_v``/``best_i`` are sorted best first; the result is ordered
    by score descending, then column ascending, so ties go to the lower item row. One sort of a
    small [touched rows, kk + most candidates] key matrix.
    """
    counts = np.bincount(rows, minlength=len(best_v))
    touched = np.flatnonzero(counts)
    slot = np.cumsum(counts > 0)[rows] - 1  # row -> its line in the key matrix
    pos = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]
    keys = np.full((len(touched), kk + int(counts.max())), _PAD_KEY, dtype=np.int64)
    old_i = best_i[touched]
    keys[:, :kk] = np.where(old_i >= 0, _keys(best_v[touched], np.maximum(old_i, 0)), _PAD_KEY)
    keys[slot, kk + pos] = _keys(vals, cols)
    keys.sort(axis=1)
    top = keys[:, :kk]
    v, c = _unkey(top)
    pad = top == _PAD_KEY
    v[pad], c[pad] = -np.inf, -1
    best_v[touched], best_i[touched] = v, c


def _block_top_k(q, items, kk, excl, tile) -> tuple[np.ndarray, np.ndarray]:
    """Top-``kk`` (indices int64, scores float32) of ``q @ items.T``, tile by tile."""
    b, v = len(q), len(items)
    best_v = np.full((b, kk), -np.inf, dtype=np.float32)
    best_i = np.full((b, kk), -1, dtype=np.int64)
    ar = np.arange(b)
    buf = np.empty((b, tile), dtype=np.float32)  # reused: a fresh 8 MB array per tile costs
    for s in range(0, v, tile):
        e = min(s + tile, v)
        w = -(-(e - s) // GROUP)  # groups in this tile; column j of the tile is in group j % w
        sc = np.matmul(q, items[s:e].T, out=buf[:, : e - s] if e - s == tile else None)
        if w * GROUP != e - s:  # ragged last tile: pad with -inf
            pad = np.full((b, w * GROUP - (e - s)), -np.inf, dtype=np.float32)
            sc = np.concatenate([sc, pad], axis=1)
        if excl is not None:
            mine = (excl >= s) & (excl < e)
            sc[ar[mine], excl[mine] - s] = -np.inf
        groups = sc.reshape(b, GROUP, w)
        gmax = groups.max(axis=1)  # [b, w]
        if s == 0:
            # No k-th best yet: the kk-th largest group maximum bounds it from below (entries
            # equal to it may still win a tie by column, hence >=).
            if w > kk:
                bound = np.partition(gmax, w - kk, axis=1)[:, w - kk]
            else:
                bound = np.full(b, -np.inf, dtype=np.float32)
            r, g = np.nonzero(gmax >= bound[:, None])
            vals = groups[r, :, g]
            keep = (vals >= bound[r, None]) & (vals > -np.inf)
        else:
            # Later columns lose ties to the current k-th best: strictly greater only.
            thr = best_v[:, -1].copy()  # contiguous: a strided broadcast operand is slow
            r, g = np.nonzero(gmax > thr[:, None])
            if len(r) == 0:
                continue
            vals = groups[r, :, g]
            keep = vals > thr[r, None]
        cols = s + g[:, None] + w * np.arange(GROUP)
        rows = np.broadcast_to(r[:, None], vals.shape)[keep]
        if len(rows):
            _merge(best_v, best_i, rows, cols[keep], vals[keep], kk)
    return best_i, best_v


def exact_neighbors(
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    metric: str = "cosine",
    exclude_self_rows: np.ndarray | None = None,
    block_bytes: int = BLOCK_BYTES,
    n_jobs: int = 1,
    on_rows=None,
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
        Size of one tile of the score matrix (query rows x item columns x 4 bytes).
    n_jobs : int
        Threads working on separate query blocks (-1 = all cores). The matrix products and most
        of the selection run outside the GIL.
    on_rows : callable, optional
        Called with the number of query rows finished after each block (progress bars).

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
    n = len(queries)
    if not (np.isfinite(queries).all() and np.isfinite(items).all()):
        raise ValueError("queries and items must be finite (found NaN or inf)")
    if metric == "cosine":
        queries, items = unit_rows(queries), unit_rows(items)
    excl = None if exclude_self_rows is None else np.asarray(exclude_self_rows, dtype=np.int64)
    if excl is not None and excl.shape != (n,):
        raise ValueError(f"exclude_self_rows must have shape ({n},), got {excl.shape}")
    return top_k_dot(queries, items, k, excl, block_bytes, n_jobs, on_rows)


def top_k_dot(
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    exclude_self_rows: np.ndarray | None = None,
    block_bytes: int = BLOCK_BYTES,
    n_jobs: int = 1,
    on_rows=None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact_neighbors` by raw inner product, without checks or normalisation.

    For callers that prepared float32 (unit) vectors once, e.g. the exact backend's table.
    """
    n, v = len(queries), len(items)
    excl = exclude_self_rows
    kk = min(k, v)
    out_idx = np.full((n, k), -1, dtype=np.int32)
    out_sc = np.full((n, k), np.nan, dtype=np.float32)
    tile = min(v, TILE_COLUMNS)
    rows = int(max(1, min(n, block_bytes // (4 * tile))))
    starts = range(0, n, rows)

    def run(s: int) -> int:
        e = min(s + rows, n)
        idx, top = _block_top_k(queries[s:e], items, kk, None if excl is None else excl[s:e], tile)
        missing = ~np.isfinite(top)
        idx[missing], top[missing] = -1, np.nan
        out_idx[s:e, :kk], out_sc[s:e, :kk] = idx, top
        return e - s

    workers = min((os.cpu_count() or 1) if n_jobs == -1 else max(1, n_jobs), len(starts))
    if workers <= 1:  # the caller's thread (e.g. one of the table's pool threads)
        for s in starts:
            count = run(s)
            if on_rows is not None:
                on_rows(count)
        return out_idx, out_sc
    with one_blas_thread(), ThreadPoolExecutor(workers, thread_name_prefix="exact") as pool:
        for count in pool.map(run, starts):
            if on_rows is not None:
                on_rows(count)
    return out_idx, out_sc


SELF_BLOCK = 1024  # rows (and columns) of one tile of the self table: 4 MB of scores
SELF_CHUNK = 4  # blocks per side of the square of tiles one task computes
def _run_all(fn, tasks, workers: int) -> None:
    if workers <= 1:
        for t in tasks:
            fn(t)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="exact") as pool:
        for _ in pool.map(fn, tasks):
            pass


def self_top_k(
    items: np.ndarray, k: int, n_jobs: int = 1, on_rows=None, block: int = SELF_BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """Every row's exact top-``k`` among the *other* rows of ``items`` by inner product.

    The related table of the exact backend with cosine scoring (``items`` unit rows): the
    scores form a symmetric matrix, so each tile of it is computed once, for blocks ``I <= J``,
    and screened twice -- its rows for block ``I``'s items, its columns for block ``J``'s. That
    halves the matrix products of :func:`top_k_dot` over the same rows. The diagonal tiles go
    first and give every row its top-``k`` within its own block; after that each task takes a
    square of tiles, screens their entries against each row's ``k``-th best as of the square's
    start (a lower bound of the final one), one vectorised comparison per direction, and merges
    each block's few survivors into its rows' top-``k`` under the block's lock, once per square.
    Squares may finish in any order on any thread:
    a bound only ever rises, entries equal to it are kept, and every merge uses the same (score
    descending, row ascending) order, so the result is the one :func:`top_k_dot` gives, ties to
    the lower row included. Each entry is computed once, so both directions see the same float.

    Returns (indices int32 [V, k], scores float32 [V, k]), ``-1``/``NaN`` padding when ``k >= V``.
    """
    x = np.ascontiguousarray(items, dtype=np.float32)
    v = len(x)
    kk = min(k, v - 1)
    out_idx = np.full((v, k), -1, dtype=np.int32)
    out_sc = np.full((v, k), np.nan, dtype=np.float32)
    if kk < 1:
        return out_idx, out_sc
    workers = max(1, (os.cpu_count() or 1) if n_jobs == -1 else n_jobs)
    best_v = np.full((v, kk), -np.inf, dtype=np.float32)
    best_i = np.full((v, kk), -1, dtype=np.int64)
    nb = -(-v // block)
    locks = [threading.Lock() for _ in range(nb)]
    # Diagonal tiles first, all of them, before any other: each sets its rows' first bound (the
    # k-th best within the block), and a block's nearest rows are often its own (sessions,
    # clusters and popularity put related items at nearby rows).
    # Off-diagonal tiles in squares of SELF_CHUNK x SELF_CHUNK blocks: a square merges each of
    # its row blocks' and column blocks' survivors once, at its end (a merge per tile and
    # direction cost a sixth of the CPU at 100k items); bounds lag by at most one square.
    tiles = [(i0, j0) for i0 in range(0, nb, SELF_CHUNK) for j0 in range(i0, nb, SELF_CHUNK)]
    done = {"tiles": 0, "rows": 0}
    progress_lock = threading.Lock()

    with one_blas_thread():
        def merge(blk: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
            if len(rows) == 0:
                return
            s = blk * block
            e = min(s + block, v)
            with locks[blk]:
                bv, bi = best_v[s:e], best_i[s:e]
                _merge(bv, bi, rows, cols, vals, kk)

        local = threading.local()  # per-thread buffers: fresh 4 MB arrays per tile page-fault

        def buffers(h: int, w: int):
            if not hasattr(local, "sc"):
                local.sc = np.empty(block * block, dtype=np.float32)
                local.row = np.empty(block * block, dtype=bool)
                local.col = np.empty(block * block, dtype=bool)
            return (local.sc[: h * w].reshape(h, w), local.row[: h * w].reshape(h, w),
                    local.col[: h * w].reshape(h, w))

        def diagonal_tile(i: int) -> None:
            # No bound yet: the k-th best within the block is one.
            si, ei = i * block, min((i + 1) * block, v)
            h = ei - si
            sc = buffers(h, h)[0]
            np.matmul(x[si:ei], x[si:ei].T, out=sc)
            np.fill_diagonal(sc, -np.inf)
            bound = (np.partition(sc, h - kk, axis=1)[:, h - kk] if h > kk
                     else np.full(h, -np.inf, dtype=np.float32))
            hit = np.flatnonzero(sc >= bound[:, None])
            r, c = np.divmod(hit, h)
            vals = sc.ravel()[hit]
            keep = vals > -np.inf
            merge(i, r[keep], c[keep] + si, vals[keep])
            progress(1)

        def square(task: tuple[int, int]) -> None:
            i0, j0 = task
            rows_found: dict[int, list] = {}
            cols_found: dict[int, list] = {}
            # Bounds as of the square's start, as contiguous copies: a strided column of best_v
            # as a broadcast operand takes numpy off its vectorised loop (half the speed).
            bounds = {b: best_v[b * block: min((b + 1) * block, v), -1].copy()
                      for b in {*range(i0, min(i0 + SELF_CHUNK, nb)),
                                *range(j0, min(j0 + SELF_CHUNK, nb))}}
            count = 0
            for i in range(i0, min(i0 + SELF_CHUNK, nb)):
                si, ei = i * block, min((i + 1) * block, v)
                h = ei - si
                for j in range(max(j0, i + 1), min(j0 + SELF_CHUNK, nb)):
                    sj, ej = j * block, min((j + 1) * block, v)
                    w = ej - sj
                    sc, row, col = buffers(h, w)
                    np.matmul(x[si:ei], x[sj:ej].T, out=sc)
                    # One pass per direction marks the entries at or above the row's (block i's
                    # items among block j's) or the column's (block j's among block i's) bound;
                    # one scan of their union finds them.
                    np.greater_equal(sc, bounds[i][:, None], out=row)
                    np.greater_equal(sc, bounds[j][None, :], out=col)
                    hit = np.flatnonzero(np.logical_or(row, col, out=col))
                    is_row = row.ravel()[hit]
                    r, c = np.divmod(hit, w)
                    vals = sc.ravel()[hit]
                    rows_found.setdefault(i, []).append((r[is_row], c[is_row] + sj, vals[is_row]))
                    is_col = vals >= bounds[j][c]
                    cols_found.setdefault(j, []).append((c[is_col], r[is_col] + si, vals[is_col]))
                    count += 1
            for found in (rows_found, cols_found):
                for b, parts in found.items():
                    r, c, vals = (np.concatenate(a) for a in zip(*parts))
                    order = np.argsort(r, kind="stable")
                    merge(b, r[order], c[order], vals[order])
            progress(count)

        n_tiles = nb * (nb + 1) // 2

        def progress(count: int) -> None:
            if on_rows is not None:
                with progress_lock:
                    done["tiles"] += count
                    rows_now = v * done["tiles"] // n_tiles
                    step, done["rows"] = rows_now - done["rows"], rows_now
                on_rows(step)

        _run_all(diagonal_tile, range(nb), workers)
        _run_all(square, tiles, workers)
    found = np.isfinite(best_v)
    out_idx[:, :kk] = np.where(found, best_i, -1)
    out_sc[:, :kk] = np.where(found, best_v, np.nan)
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
