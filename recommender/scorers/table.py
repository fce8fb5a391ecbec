"""The related table every scorer produces, and how it becomes an INDEX dir.

A :class:`ScoredTable` is ``neighbors`` int32 [V, K] (``-1`` padded) and ``scores`` float32
[V, K] (``NaN`` padded) over a vocabulary, best first -- the same arrays an embedding index
stores -- so evaluation scores every scorer with one function and ``write_index`` ships any of
them under the INDEX contract (``RelatedItems.load``, ``pin2vec related``, ``pin2vec evaluate``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from recommender.core.artifacts import prepare_output_dir, write_manifest, write_parquet
from recommender.core.integrity import check_table
from recommender.index.table import PAD_NEIGHBOR, related_frame

FILL_SCORE = 0.0  # score of popular items filling a row that has fewer than K scored candidates


@dataclass(frozen=True)
class ScoredTable:
    """A scorer's top-K table over ``item_ids`` plus what made it (for the manifest)."""

    item_ids: pa.Array
    counts: np.ndarray  # int64 [V]: occurrences in the training sessions
    neighbors: np.ndarray  # int32 [V, K]
    scores: np.ndarray  # float32 [V, K]
    scoring: str  # "cooccurrence" | "ease" | "hybrid" | "popular" | "similar" | ...
    label: str  # human name: "sequential rules", "item-kNN", ...
    settings: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.neighbors.shape[1]


def top_k_rows(a: np.ndarray, b: np.ndarray, score: np.ndarray, k: int,
               tiebreak: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct query row in ``a``, the ``k`` best ``b`` by ``score`` (then ``tiebreak``
    descending, then the lower row): (rows int64 [n], neighbours int32 [n, k], scores float32).
    """
    keys = [b, -score, a] if tiebreak is None else [b, -tiebreak, -score, a]
    order = np.lexsort(keys)
    a, b, score = a[order], b[order], score[order]
    first = np.searchsorted(a, a, side="left")
    rank = np.arange(len(a)) - first
    rows, slot = np.unique(a, return_inverse=True)
    nbrs = np.full((len(rows), k), PAD_NEIGHBOR, dtype=np.int32)
    scores = np.full((len(rows), k), np.nan, dtype=np.float32)
    keep = rank < k
    nbrs[slot[keep], rank[keep]] = b[keep]
    scores[slot[keep], rank[keep]] = score[keep]
    return rows.astype(np.int64), nbrs, scores


def top_k_pairs(a: np.ndarray, b: np.ndarray, score: np.ndarray, n_items: int, k: int,
                tiebreak: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k_rows` as ``-1``/``NaN``-padded int32/float32 [n_items, k] arrays."""
    nbrs = np.full((n_items, k), PAD_NEIGHBOR, dtype=np.int32)
    scores = np.full((n_items, k), np.nan, dtype=np.float32)
    if len(a) == 0:
        return nbrs, scores
    rows, nb, sc = top_k_rows(a, b, score, k, tiebreak)
    nbrs[rows], scores[rows] = nb, sc
    return nbrs, scores


def fill_popular(nbrs: np.ndarray, scores: np.ndarray, popular: np.ndarray,
                 block: int = 65_536) -> int:
    """Fill ``-1`` slots with the most popular items not yet in the row (nor the row itself).

    Filled entries get score :data:`FILL_SCORE`. Returns how many slots were filled.
    """
    v, k = nbrs.shape
    short = np.nonzero(nbrs[:, -1] < 0)[0]
    cand = np.asarray(popular[: min(2 * k + 1, len(popular))], dtype=np.int32)
    filled = 0
    for s in range(0, len(short), block):
        r = short[s : s + block]
        have = nbrs[r]  # [n, k]
        taken = (have[:, :, None] == cand[None, None, :]).any(axis=1) | (cand[None] == r[:, None])
        free = ~taken
        n_have = (have >= 0).sum(axis=1)
        slot = np.cumsum(free, axis=1) - 1 + n_have[:, None]  # target column of each free cand
        use = free & (slot < k)
        rr, cc = np.nonzero(use)
        nbrs[r[rr], slot[rr, cc]] = cand[cc]
        scores[r[rr], slot[rr, cc]] = FILL_SCORE
        filled += len(rr)
    return filled


def write_index(table: ScoredTable, output_dir: str | Path, overwrite: bool = False,
                extra: dict | None = None) -> dict:
    """Write ``table`` as an INDEX dir (no ``items.ann``: lookups come from the table).

    Files: ``items.parquet`` (``item_id``, ``count``), ``neighbors.npy``, ``scores.npy``,
    ``related.parquet`` and ``manifest.json`` (last) with ``scoring``, ``label`` and ``settings``.
    """
    from recommender.core.artifacts import save_npy

    inputs = [(extra or {}).get(key) for key in ("sessions_dir", "model_dir")]
    out = prepare_output_dir(output_dir, overwrite, kind="index", inputs=inputs)
    started = time.perf_counter()
    ids = table.item_ids.cast(pa.string())
    check_table(table.neighbors, table.scores, len(ids), f"related table of {out}")
    write_parquet(out / "items.parquet", pa.table({"item_id": ids,
                                                   "count": pa.array(table.counts, pa.int64())}))
    save_npy(out / "neighbors.npy", table.neighbors.astype(np.int32, copy=False))
    save_npy(out / "scores.npy", table.scores.astype(np.float32, copy=False))
    write_parquet(out / "related.parquet", related_frame(ids, table.neighbors, table.scores))
    files = ["items.parquet", "neighbors.npy", "scores.npy", "related.parquet"]
    manifest = {
        "format_version": 1,
        "kind": "index",
        "k": table.k,
        "scoring": table.scoring,
        "label": table.label,
        "settings": table.settings,
        "metric": None,  # no vectors: related_to_session() sums stored rows instead of Annoy
        "table_engine": "scorer",
        "table_seconds": round(time.perf_counter() - started, 3),
        "padding": {"neighbor": PAD_NEIGHBOR, "score": "NaN"},
        "counts": {
            "items": len(ids),
            "related_pairs": int((table.neighbors >= 0).sum()),
            "short_rows": int((table.neighbors[:, -1] < 0).sum()),
        },
        "files": {f: {"bytes": (out / f).stat().st_size} for f in files},
        **(extra or {}),
    }
    return write_manifest(out, manifest, files)
