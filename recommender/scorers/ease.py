"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): a closed-form linear item-item model.

With ``X`` the binary session x item matrix and ``G = XᵀX``, ``P = (G + λI)⁻¹`` and
``B = I − P·diag(1/diag(P))`` (so ``B_ij = −P_ij / P_jj`` off the diagonal, 0 on it). A session
``x`` scores items ``x·B``, so the items related to ``a`` are row ``a`` of ``B``, best first.

The Gram matrix is dense [V, V]: float64 needs ``8 V²`` bytes per copy and the inverse a few
copies. Catalogues above ``max_items`` (default 20,000: ~3.2 GB per copy) or whose matrices would
not fit in half of the available memory are refused with :class:`EaseTooLarge` -- a note for the
caller to skip EASE, never an out-of-memory crash.
"""

from __future__ import annotations

import logging

import numpy as np

from recommender.core.errors import Pin2VecError
from recommender.scorers.data import SessionData
from recommender.scorers.pairs import count_pairs, distinct_per_session
from recommender.scorers.table import ScoredTable

log = logging.getLogger(__name__)

MAX_ITEMS = 20_000
COPIES = 3  # G, its inverse, and LAPACK's workspace / the B block


class EaseTooLarge(Pin2VecError):
    """The catalogue is too large for EASE's dense [V, V] matrices on this machine."""


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``), or 4 GiB when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def check_fits(n_items: int, max_items: int = MAX_ITEMS) -> None:
    """Raise :class:`EaseTooLarge` unless EASE on ``n_items`` items is safe here."""
    need = COPIES * 8 * n_items * n_items
    if n_items > max_items or need > available_memory() // 2:
        raise EaseTooLarge(
            f"EASE skipped: {n_items:,} items need {need / 2**30:.1f} GiB of dense matrices "
            f"(limit {max_items:,} items and half of the available memory); use co-occurrence "
            "or the hybrid scorer for this catalogue"
        )


def gram(data: SessionData) -> np.ndarray:
    """``XᵀX`` of the binary session x item matrix, dense float64 [V, V]."""
    v = data.n_items
    pairs = count_pairs(data.rows, data.offsets, v, binary=True)
    g = np.zeros((v, v))
    g[pairs.a, pairs.b] = pairs.weights
    rows, _ = distinct_per_session(data.rows, data.offsets)
    g[np.diag_indices(v)] = np.bincount(rows, minlength=v)
    return g


def ease_weights(g: np.ndarray, lam: float) -> np.ndarray:
    """``B`` from the Gram matrix (overwrites ``g``): ``B_ij = -P_ij / P_jj``, diagonal 0."""
    g[np.diag_indices(len(g))] += lam
    p = np.linalg.inv(g)
    del g
    p /= -np.diag(p)[None, :]
    p[np.diag_indices(len(p))] = 0.0
    return p


def top_k_dense(b: np.ndarray, k: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top ``k`` of a dense [V, V] score matrix (diagonal excluded), best first."""
    v = len(b)
    kk = min(k, v - 1)
    nbrs = np.full((v, k), -1, dtype=np.int32)
    scores = np.full((v, k), np.nan, dtype=np.float32)
    for s in range(0, v, block):
        sc = np.array(b[s : s + block])
        r = np.arange(len(sc))
        sc[r, s + r] = -np.inf
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk] if kk < v else np.argsort(-sc, 1)
        vals = np.take_along_axis(sc, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        nbrs[s : s + len(sc), :kk] = np.take_along_axis(part, order, axis=1)
        scores[s : s + len(sc), :kk] = np.take_along_axis(vals, order, axis=1)
    return nbrs, scores


def ease(data: SessionData, lam: float = 100.0, k: int = 20, max_items: int = MAX_ITEMS
         ) -> ScoredTable:
    """The EASE related table of ``data`` with L2 weight ``lam``.

    Raises
    ------
    EaseTooLarge
        When the catalogue does not fit (see the module docstring).
    """
    check_fits(data.n_items, max_items)
    b = ease_weights(gram(data), lam)
    nbrs, scores = top_k_dense(b, k)
    return ScoredTable(data.item_ids, data.counts, nbrs, scores, "ease", "EASE",
                       {"lambda": lam, "k": k})


def ease_many(data: SessionData, lambdas, k: int = 20, max_items: int = MAX_ITEMS
              ) -> list[ScoredTable]:
    """EASE tables for several ``lambdas``, sharing one Gram matrix (validation sweeps)."""
    check_fits(data.n_items, max_items)
    g = gram(data)
    out = []
    for lam in lambdas:
        nbrs, scores = top_k_dense(ease_weights(g.copy(), lam), k)
        out.append(ScoredTable(data.item_ids, data.counts, nbrs, scores, "ease", "EASE",
                               {"lambda": lam, "k": k}))
    return out
