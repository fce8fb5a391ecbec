"""The related-item table: query a built Annoy index for every item, batch by batch.

Both table engines -- the in-process one here (one process per core) and the Beam fan-out in
``pipeline/table_job.py`` -- call :class:`TableQuerier` on the same fixed row ranges from
:func:`batch_ranges`, so they run the same Annoy queries and the same float arithmetic and produce
byte-identical tables. Workers receive a :class:`TableSpec` (paths and numbers only), load the Annoy
file themselves (Annoy's ``load`` memory-maps it, so every worker shares one copy in the page cache)
and memory-map the vectors.

Padding: when fewer than K other items can be returned (a catalogue smaller than K + 1, or Annoy
finding fewer candidates), the row ends in neighbour ``-1`` with score ``NaN``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from recommender.core.artifacts import save_npy, write_parquet
from recommender.core.errors import Pin2VecError
from recommender.core.progress import progress_bar
from recommender.core.vectors import unit_rows

log = logging.getLogger(__name__)

PAD_NEIGHBOR = -1
PAD_SCORE = float("nan")


@dataclass(frozen=True)
class TableSpec:
    """What a worker needs to compute rows of the table (plain values, cheap to pickle).

    ``query_path`` holds the vectors the queries are made from (input vectors); ``item_path`` the
    vectors in the Annoy index that neighbours are scored against (input vectors for ``angular``,
    context vectors for ``dot``).
    """

    ann_path: str
    query_path: str
    item_path: str
    dim: int
    metric: str  # "angular" | "dot"
    k: int
    search_k: int


def batch_ranges(n_items: int, batch_size: int) -> list[tuple[int, int]]:
    """Half-open row ranges ``[start, end)`` covering ``n_items`` in batches of ``batch_size``."""
    return [(s, min(s + batch_size, n_items)) for s in range(0, n_items, batch_size)]


class TableQuerier:
    """Loads the index once (per process) and answers :meth:`query` for row ranges."""

    def __init__(self, spec: TableSpec):
        from annoy import AnnoyIndex

        self.spec = spec
        self.index = AnnoyIndex(spec.dim, spec.metric)
        self.index.load(spec.ann_path)  # mmap: shared between processes through the page cache
        self.queries = np.load(spec.query_path, mmap_mode="r", allow_pickle=False)
        self.items = np.load(spec.item_path, mmap_mode="r", allow_pickle=False)

    def query(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-K other items of rows ``start..end-1``: neighbours int32 and scores float32 [n, K].

        Rows are sorted best first by the exact score (cosine for ``angular``, inner product for
        ``dot``), ties broken by the lower row id, so the order does not depend on Annoy's
        internal rounding.
        """
        k, search_k, n = self.spec.k, self.spec.search_k, end - start
        nbrs = np.full((n, k), PAD_NEIGHBOR, dtype=np.int32)
        ask = k + 1  # one more than K: the item itself usually comes back first
        if self.spec.metric == "angular":
            for r, i in enumerate(range(start, end)):
                found = [j for j in self.index.get_nns_by_item(i, ask, search_k) if j != i][:k]
                nbrs[r, : len(found)] = found
        else:
            queries = np.asarray(self.queries[start:end], dtype=np.float32)
            for r, i in enumerate(range(start, end)):
                found = self.index.get_nns_by_vector(queries[r].tolist(), ask, search_k)
                found = [j for j in found if j != i][:k]
                nbrs[r, : len(found)] = found
        return self._score(start, end, nbrs)

    def _score(self, start: int, end: int, nbrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        valid = nbrs >= 0
        q = np.asarray(self.queries[start:end], dtype=np.float32)
        cand = np.asarray(self.items[np.where(valid, nbrs, 0)], dtype=np.float32)
        if self.spec.metric == "angular":
            q, cand = unit_rows(q), unit_rows(cand)
        scores = np.einsum("bd,bkd->bk", q, cand).astype(np.float32)
        scores[~valid] = -np.inf
        # Best first; equal scores by row id; padding (-inf for the sort) last.
        order = np.lexsort((np.where(valid, nbrs, np.iinfo(np.int32).max), -scores), axis=1)
        nbrs = np.take_along_axis(nbrs, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        scores[nbrs < 0] = PAD_SCORE
        return nbrs, scores


# --- in-process engine: one worker process per core --------------------------------------------


def shard_name(start: int, end: int) -> str:
    """File-name stem of the shard holding table rows ``[start, end)``."""
    return f"rows-{start:012d}-{end:012d}"


def _run_worker(spec: TableSpec, shard_dir: Path, start: int, end: int, batch_size: int) -> None:
    """Compute rows ``[start, end)`` (batch-aligned) batch by batch into shard files."""
    querier = TableQuerier(spec)
    for s in range(start, end, batch_size):
        e = min(s + batch_size, end)
        nbrs, scores = querier.query(s, e)
        save_npy(shard_dir / f"{shard_name(s, e)}.scores.npy", scores)
        save_npy(shard_dir / f"{shard_name(s, e)}.neighbors.npy", nbrs)  # last: marks it done


def _gather(shard_dir: Path, ranges, k: int) -> tuple[np.ndarray, np.ndarray]:
    n_items = ranges[-1][1]
    nbrs = np.empty((n_items, k), dtype=np.int32)
    scores = np.empty((n_items, k), dtype=np.float32)
    for s, e in ranges:
        stem = shard_dir / shard_name(s, e)
        nbrs[s:e] = np.load(f"{stem}.neighbors.npy", allow_pickle=False)
        scores[s:e] = np.load(f"{stem}.scores.npy", allow_pickle=False)
    return nbrs, scores


def compute_table(
    spec: TableSpec,
    n_items: int,
    batch_size: int,
    n_jobs: int = -1,
    progress: bool = True,
    min_rows_per_worker: int = 20_000,
) -> tuple[np.ndarray, np.ndarray]:
    """The whole table on this machine: (neighbours int32 [V, K], scores float32 [V, K]).

    Small catalogues are queried in this process: starting a worker costs about a second, more
    than ``min_rows_per_worker`` queries take.

    Annoy's Python binding holds the GIL while it searches (measured with annoy 1.17.3: two threads
    are no faster than one), so parallelism comes from worker processes that each load the
    memory-mapped index. They are started as ``python -m recommender.index.table`` rather than
    through multiprocessing, so the caller's ``__main__`` is never re-imported and no thread state
    (BLAS, gRPC, tqdm) is forked.
    """
    ranges = batch_ranges(n_items, batch_size)
    workers = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
    workers = max(1, min(workers, len(ranges), -(-n_items // min_rows_per_worker)))
    bar = progress_bar(total=n_items, enabled=progress, desc="related table", unit="item")
    if workers == 1:
        nbrs = np.empty((n_items, spec.k), dtype=np.int32)
        scores = np.empty((n_items, spec.k), dtype=np.float32)
        querier = TableQuerier(spec)
        for start, end in ranges:
            nbrs[start:end], scores[start:end] = querier.query(start, end)
            bar.update(end - start)
        bar.close()
        return nbrs, scores
    with tempfile.TemporaryDirectory(prefix=".table-", dir=Path(spec.ann_path).parent) as tmp:
        shard_dir = Path(tmp)
        (shard_dir / "spec.json").write_text(json.dumps(asdict(spec)))
        procs = []
        try:
            for chunk in np.array_split(np.arange(len(ranges)), workers):
                start, end = ranges[chunk[0]][0], ranges[chunk[-1]][1]
                cmd = [sys.executable, "-m", "recommender.index.table", str(shard_dir),
                       str(start), str(end), str(batch_size)]
                procs.append(subprocess.Popen(cmd))
            done = 0
            while any(p.poll() is None for p in procs):
                time.sleep(0.2)
                now = sum(e - s for s, e in ranges
                          if (shard_dir / f"{shard_name(s, e)}.neighbors.npy").exists())
                bar.update(now - done)
                done = now
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait()
            bar.close()
        failed = [p.returncode for p in procs if p.returncode != 0]
        if failed:
            raise Pin2VecError(f"related-table worker process(es) failed with exit code {failed}")
        return _gather(shard_dir, ranges, spec.k)


def related_frame(item_ids: list[str], nbrs: np.ndarray, scores: np.ndarray) -> pa.Table:
    """The table in long form: ``item_id``, ``rank`` (1 = best), ``related_item_id``, ``score``.

    Padding entries (neighbour -1) are left out, so an item may have fewer than K rows.
    """
    ids = pa.array(item_ids, pa.string())
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


if __name__ == "__main__":
    # Worker entry used by compute_table: SHARD_DIR START END BATCH_SIZE (spec in SHARD_DIR).
    _dir, _start, _end, _batch = sys.argv[1:5]
    _spec = TableSpec(**json.loads((Path(_dir) / "spec.json").read_text()))
    _run_worker(_spec, Path(_dir), int(_start), int(_end), int(_batch))
