"""Hybrid related items: co-occurrence candidates and embedding neighbours, one blended score.

Pinterest kept board co-occurrence as a candidate source beside Pin2Vec and blended both
(+5% engagement). Here each query item ``a`` gets the union of its top-C count partners and its
top-C vector neighbours, and every candidate ``b`` is scored by both sources exactly:

    score(a, b) = w_a · c(a, b) / max_b' c(a, b')  +  (1 − w_a) · v̂(a, b)
    w_a = e_a / (e_a + evidence)

``c`` is the count scorer's normalised score (0 for pairs never seen), ``v̂`` the vector score
(cosine for ``similar``, input·context for ``complementary``) min-max scaled over the row's
candidates, ``e_a`` the query item's total pair weight. So head items lean on their counts, thin
items on their vectors; ``evidence`` (the pair weight at which both count equally) is the weight
that ``run`` and ``tune`` choose on validation. Items without a vector use counts only; items
with neither fall back to popular items.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recommender.core.errors import ConfigError
from recommender.scorers.cooccurrence import (
    SEQUENTIAL_RULES,
    CooccurrenceConfig,
    item_evidence,
    normalise,
    pair_counts,
)
from recommender.scorers.data import SessionData
from recommender.scorers.table import ScoredTable, fill_popular, top_k_pairs


@dataclass(frozen=True)
class HybridConfig:
    counts: CooccurrenceConfig = field(default_factory=lambda: SEQUENTIAL_RULES)
    vectors: str = "similar"  # "similar" (cosine) | "complementary" (input · context)
    evidence: float = 20.0  # pair weight at which counts and vectors weigh equally
    candidates: int = 50  # per source
    k: int = 20

    def __post_init__(self):
        if self.vectors not in ("similar", "complementary"):
            raise ConfigError(f"vectors must be 'similar' or 'complementary', got "
                              f"{self.vectors!r}")
        if not self.evidence >= 0:
            raise ConfigError(f"evidence must be >= 0, got {self.evidence!r}")
        if self.candidates < 1 or self.k < 1:
            raise ConfigError("candidates and k must be positive")


@dataclass(frozen=True)
class ItemVectors:
    """Embedding vectors of (some of) the items: any MODEL's input and context vectors."""

    item_ids: list[str] | pa.Array
    vectors: np.ndarray  # float32 [n, d]
    context: np.ndarray  # float32 [n, d]

    @classmethod
    def from_model(cls, model) -> ItemVectors:
        return cls(model.item_ids, np.asarray(model.vectors), np.asarray(model.context_vectors))


def _aligned(vectors: ItemVectors, data: SessionData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query vectors, item vectors, has-vector mask) in ``data``'s row order (zeros if none)."""
    ids = pa.array(vectors.item_ids, pa.string()) if not isinstance(vectors.item_ids, pa.Array) \
        else vectors.item_ids
    src = pc.index_in(data.item_ids, value_set=ids).to_numpy(zero_copy_only=False)
    has = ~np.isnan(src) if src.dtype.kind == "f" else np.ones(len(src), bool)
    src = np.where(has, src, 0).astype(np.int64)
    d = vectors.vectors.shape[1]
    q = np.zeros((data.n_items, d), np.float32)
    q[has] = vectors.vectors[src[has]]
    return q, src, has


class HybridScorer:
    """Pair counts and vector neighbours computed once; :meth:`table` blends for any weight.

    Validation tries several ``evidence`` weights; the expensive parts do not depend on it.
    """

    def __init__(self, data: SessionData, vectors: ItemVectors, config: HybridConfig):
        from recommender.core.vectors import unit_rows
        from recommender.index.exact import exact_neighbors

        self.data, self.config = data, config
        cc = config.counts
        pairs = pair_counts(data, cc)
        cscore = normalise(pairs, item_evidence(data, cc), cc)
        c_nb, c_sc = top_k_pairs(pairs.a, pairs.b, cscore, data.n_items, config.candidates,
                                 tiebreak=data.counts[pairs.b])
        self.evidence = pairs.row_totals()
        q, src, has = _aligned(vectors, data)
        if config.vectors == "similar":
            items, metric = q, "cosine"
        else:
            items = np.zeros_like(q)
            items[has] = vectors.context[src[has]]
            metric = "dot"
        rows = np.arange(data.n_items)
        v_nb, _ = exact_neighbors(q, items, config.candidates, metric, exclude_self_rows=rows)
        v_nb[~has] = -1
        v_nb[np.isin(v_nb, np.nonzero(~has)[0])] = -1  # items without vectors are no candidates
        cand = np.concatenate([c_nb, v_nb], axis=1).astype(np.int64)
        # Duplicates (in both lists) and padding are dropped; scores computed for the rest.
        srt = np.sort(cand, axis=1)
        dup = np.zeros_like(srt, dtype=bool)
        dup[:, 1:] = srt[:, 1:] == srt[:, :-1]
        valid = (srt >= 0) & ~dup
        a = np.broadcast_to(rows[:, None], srt.shape)[valid]
        b = srt[valid]
        # Exact count score of every candidate, scaled by the row's best.
        lookup = pairs.lookup(a, b)
        n = item_evidence(data, cc)
        tmp = type(pairs)(a, b, lookup, data.n_items)
        c = np.where(lookup > 0, normalise(tmp, n, cc), 0.0)
        cmax = np.nan_to_num(c_sc[:, 0], nan=0.0)
        c = np.divide(c, cmax[a], out=np.zeros_like(c), where=cmax[a] > 0)
        # Vector score of every candidate, min-max scaled per row.
        if config.vectors == "similar":
            uq = unit_rows(q)
            v = np.einsum("nd,nd->n", uq[a], uq[b])
        else:
            v = np.einsum("nd,nd->n", q[a], items[b])
        vmin = np.full(data.n_items, np.inf)
        vmax = np.full(data.n_items, -np.inf)
        np.minimum.at(vmin, a, v)
        np.maximum.at(vmax, a, v)
        span = (vmax - vmin)[a]
        v = np.divide(v - vmin[a], span, out=np.zeros_like(v), where=span > 0)
        v[~has[b] | ~has[a]] = 0.0
        self._a, self._b, self._c, self._v, self._has = a, b, c, v, has

    def table(self, evidence: float | None = None) -> ScoredTable:
        """The blended top-K table for evidence weight ``evidence`` (default: the config's)."""
        gamma = self.config.evidence if evidence is None else evidence
        e = self.evidence
        w = np.where(self._has, e / np.maximum(e + gamma, 1e-12), 1.0)
        w = np.where(self._has & (e == 0), 0.0, w)
        wa = w[self._a]
        score = wa * self._c + (1 - wa) * self._v
        data = self.data
        nbrs, scores = top_k_pairs(self._a, self._b, score, data.n_items, self.config.k,
                                   tiebreak=data.counts[self._b])
        filled = fill_popular(nbrs, scores, data.popularity_order())
        settings = {**asdict(self.config), "evidence": gamma, "filled_slots": filled}
        return ScoredTable(data.item_ids, data.counts, nbrs, scores, "hybrid",
                           f"hybrid ({self.config.vectors})", settings)


def hybrid(data: SessionData, vectors: ItemVectors, config: HybridConfig = HybridConfig()
           ) -> ScoredTable:
    """The hybrid related table of ``data`` and ``vectors``."""
    return HybridScorer(data, vectors, config).table()
