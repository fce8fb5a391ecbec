"""What the report computes itself when the evaluation JSON lacks it.

* HR@K by popularity bucket of the query item (and for items unseen in training) for every INDEX dir
  of the run and a co-occurrence baseline, on the test sessions' next-item pairs.
* A co-occurrence table (window 5, both directions, raw counts) for the explorer and the buckets.

Buckets split the training catalogue by popularity so that each holds about a third of the
training events: ``head`` (the few items with the first third), ``torso`` and ``tail``; ``unseen``
are query items absent from the training sessions (cold items). The page prints the thresholds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BUCKETS = ("head", "torso", "tail", "unseen")
COOC_WINDOW = 5
COOC_MAX_TOKENS = 5_000_000  # the report's own co-occurrence stays within seconds and memory


def train_counts(run_dir: Path) -> dict[str, int] | None:
    path = run_dir / "train_sessions" / "items.parquet"
    if not path.is_file():
        return None
    t = pq.read_table(path)
    col = "engagements" if "engagements" in t.column_names else t.column_names[1]
    return dict(zip(t.column("item_id").to_pylist(), t.column(col).to_pylist()))


def bucket_thresholds(counts: dict[str, int]) -> tuple[int, int]:
    """Minimum training count of a head item and of a torso item (thirds of the events)."""
    c = np.sort(np.fromiter(counts.values(), np.int64))[::-1]
    if len(c) == 0:
        return 1, 1
    share = np.cumsum(c) / c.sum()
    head = int(c[min(np.searchsorted(share, 1 / 3), len(c) - 1)])
    torso = int(c[min(np.searchsorted(share, 2 / 3), len(c) - 1)])
    return max(head, torso, 1), max(torso, 1)


def bucket_of(queries: pa.Array, counts: dict[str, int], thresholds: tuple[int, int]):
    q = np.array([counts.get(x, 0) for x in queries.to_pylist()], np.int64)
    head, torso = thresholds
    return np.select([q == 0, q >= head, q >= torso], ["unseen", "head", "torso"], "tail")


def hits(ids: list[str], neighbors: np.ndarray, queries: pa.Array, targets: pa.Array,
         k: int) -> np.ndarray:
    """Boolean hit per pair: the target is among the first ``k`` related items of the query."""
    vocab = pa.array(ids, pa.string())
    q = pc.index_in(queries, value_set=vocab).to_numpy(zero_copy_only=False)
    t = pc.index_in(targets, value_set=vocab).to_numpy(zero_copy_only=False)
    out = np.zeros(len(q), bool)
    known = ~np.isnan(q)
    if not known.any():
        return out
    rows = q[known].astype(np.int64)
    trow = np.where(np.isnan(t[known]), -2, t[known]).astype(np.int64)
    table = np.asarray(neighbors[rows])[:, :k]
    out[known] = (table == trow[:, None]).any(axis=1)
    return out


def breakdown(tables: dict[str, tuple], pairs, counts: dict[str, int], ks=(10, 20)) -> dict:
    """``{scorer: {bucket: {"hr@k": value, "queries": n}}}`` plus ``"_thresholds"``."""
    queries, targets = pairs
    thresholds = bucket_thresholds(counts)
    buckets = bucket_of(queries, counts, thresholds)
    out: dict = {"_thresholds": {"head": thresholds[0], "torso": thresholds[1]}}
    for name, (ids, neighbors, _) in tables.items():
        rows = {}
        for k in ks:
            if neighbors.shape[1] < k:
                continue
            h = hits(ids, neighbors, queries, targets, k)
            for b in BUCKETS:
                mask = buckets == b
                rows.setdefault(b, {"queries": int(mask.sum())})
                if mask.any():
                    rows[b][f"hr@{k}"] = float(h[mask].mean())
        out[name] = rows
    return out


def cooccurrence(run_dir: Path, k: int = 20) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """Window-5 co-occurrence counts of ``train_sessions/``: ``(ids, neighbors, scores)``.

    Ties are broken by the other item's popularity, like the evaluation's baseline. None when there
    are no training sessions or more than :data:`COOC_MAX_TOKENS` tokens.
    """
    paths = sorted((run_dir / "train_sessions").glob("sessions-*.parquet"))
    if not paths:
        return None
    lists = [pq.read_table(p, columns=["items"]).column(0).combine_chunks() for p in paths]
    items = pa.concat_arrays(lists) if len(lists) > 1 else lists[0]
    flat = pc.list_flatten(items)
    if len(flat) < 2 or len(flat) > COOC_MAX_TOKENS:
        return None
    encoded = pc.dictionary_encode(flat)
    ids = [str(x) for x in encoded.dictionary.to_pylist()]
    rows = encoded.indices.to_numpy().astype(np.int64)
    parents = pc.list_parent_indices(items).to_numpy()
    v = len(ids)
    popularity = np.bincount(rows, minlength=v)
    keys = []
    for off in range(1, COOC_WINDOW + 1):
        same = parents[:-off] == parents[off:]
        a, b = rows[:-off][same], rows[off:][same]
        keep = a != b
        keys += [a[keep] * v + b[keep], b[keep] * v + a[keep]]
    neighbors = np.full((v, k), -1, np.int64)
    scores = np.full((v, k), np.nan, np.float32)
    if keys:
        pair, n = np.unique(np.concatenate(keys), return_counts=True)
        a, b = pair // v, pair % v
        order = np.lexsort((b, -popularity[b], -n, a))
        a, b, n = a[order], b[order], n[order]
        rank = np.arange(len(a)) - np.searchsorted(a, a, side="left")
        keep = rank < k
        neighbors[a[keep], rank[keep]] = b[keep]
        scores[a[keep], rank[keep]] = n[keep]
    return ids, neighbors, scores
