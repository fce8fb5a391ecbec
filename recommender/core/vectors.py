"""Small vector helpers shared by the stages (training diagnostics, indexing, lookups)."""

from __future__ import annotations

import numpy as np


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` with every vector (last axis) scaled to unit length; zero vectors stay zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """int64 [n, min(k, m)]: the columns of the ``k`` highest scores of each row of ``scores``
    [n, m], best first; equal scores rank the lower column first -- also at the ``k``-th place,
    where ``argpartition`` alone keeps any of the tied columns (so the same scores could give
    different related items in the index, at lookup time and in the evaluation). NaN ranks
    last, with -inf.
    """
    neg = -np.asarray(scores)
    n, m = neg.shape
    kk = min(k, m)
    if kk == 0:
        return np.zeros((n, 0), np.int64)
    neg = np.where(np.isnan(neg), np.inf, neg)
    if kk < m:
        top = np.argpartition(neg, kk - 1, axis=1)[:, :kk]
        kth = neg[np.arange(n), top[:, kk - 1]]  # the k-th best score of each row
        kept = (np.take_along_axis(neg, top, 1) == kth[:, None]).sum(axis=1)
        tied = (neg == kth[:, None]).sum(axis=1)
        for r in np.flatnonzero(tied > kept):  # more equal scores than places: lowest columns
            above = np.flatnonzero(neg[r] < kth[r])
            top[r] = np.concatenate([above, np.flatnonzero(neg[r] == kth[r])[: kk - len(above)]])
    else:
        top = np.tile(np.arange(m), (n, 1))
    order = np.lexsort((top, np.take_along_axis(neg, top, 1)), axis=1)
    return np.take_along_axis(top, order, 1).astype(np.int64)
