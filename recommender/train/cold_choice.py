"""How cold items are matched, chosen by validation on the training data (pseudo-cold items).

A share of the trained items that carry attribute values (``AttributeConfig.validation``, 10%)
is left out of the attribute replay (:mod:`recommender.train.attributes`): their engagements
still train the item vectors, but no attribute vector learns from them, so to the attributes
they are as new as a product added after training. After the last epoch, the next-item pairs
whose query is one of them, taken from the latest 30% of the training sessions, are scored from
the query's attribute vector alone with every setting of :data:`GRID`
(:func:`recommender.core.attributes.cold_scores`: cosine in attribute space or the skip-gram
logit against the context vectors, each plus a popularity weight that reads the engagements of
the earlier sessions, as the test reads training counts). The best HR@10 names the scoring;
within it, the smallest popularity weight whose HR@10 is within one paired standard error of
the best is chosen (:func:`pick`) and recorded in the MODEL (``attributes.json``
``cold_scoring``, manifest ``attributes_training.cold_scoring``). The index uses it for cold
rows unless told otherwise. Nothing outside the training sessions is read.

The grid also holds, for each attribute column, the ``same:<column>`` family: candidates
sharing a value of the column with the query first, ranked by ``w * log(1 + engagements) +
(1 - w) * cosine``. Its weight 1 *is* the baseline the evaluation measures against (most popular
within the same value, then most popular), so where attribute vectors carry no signal beyond
the value the choice can fall back to it; within this family the one-standard-error rule keeps
the weight closest to the baseline (1 first, then 0.3, 0.1, 0.03, 0).

The popularity weight matters because logs differ: on a rating-like log the item after a new
film is mostly a popular one (a large weight wins), in click sessions of fading products it is
a recent, rarely counted one (weight 0 wins). A fixed default was right on one kind only.
"""

from __future__ import annotations

import numpy as np

from recommender.core.attributes import SAME, SharedValues, cold_scores

# (scoring, popularity weight) settings tried, simplest first (ties keep the earlier one).
GRID = (("space", 0.0), ("space", 0.01), ("space", 0.03), ("space", 0.1),
        ("space", 0.3), ("context", 0.0), ("context", 0.25), ("context", 0.5), ("context", 0.75),
        ("context", 1.0))
# "same:<column>" settings, one family per attribute column: weight 1 is exactly the baseline
# "most popular within the same value" (so the choice can always fall back to it), lower
# weights mix in attribute cosine within the same value (recommender.core.attributes).
SAME_WEIGHTS = (1.0, 0.3, 0.1, 0.03, 0.0)


def grid_for(columns) -> tuple:
    """:data:`GRID` plus a ``same:<column>`` family for each attribute column."""
    return GRID + tuple((f"{SAME}{c}", w) for c in columns for w in SAME_WEIGHTS)


def _simplicity(setting) -> float:
    """Sort key within a family for the one-standard-error rule: no popularity first for
    ``space``/``context``; the plain baseline (weight 1) first for ``same:``."""
    scoring, weight = setting
    return -weight if scoring.startswith(SAME) else weight


DEFAULT = {"scoring": "space", "popularity": 0.0}  # without enough validation pairs
MIN_PAIRS = 30  # fewer validation pairs than this: the default, not a noisy choice
LATE = 0.3  # validation pairs come from this latest share of the training sessions
MAX_SCORES = 2e8  # pairs x candidates scored per setting at most (pairs are sampled down)


def validation_pairs(chunks, pseudo: np.ndarray, sessions: int, limit: int,
                     rng: np.random.Generator, late: float = LATE
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query rows, next rows, earlier counts): the consecutive distinct pairs, within a session
    of the latest ``late`` share of the ``sessions`` (corpus order, which is time order for a
    SESSIONS dir), whose query is marked in ``pseudo`` -- at most ``limit``, sampled -- and each
    item's engagements in the sessions before them.

    Like the evaluation's time split: the next items come from later sessions than the counts
    the popularity weight reads, so a weight that only fits stale popularity is not chosen.
    """
    first_late = int(np.floor(sessions * (1 - late)))
    qs, ts = [], []
    early = np.zeros(len(pseudo), np.int64)
    offset = 0
    for tokens, lengths in chunks:
        n_sess = len(lengths)
        n_early = min(n_sess, max(0, first_late - offset))  # this chunk's sessions before the cut
        cut = int(lengths[:n_early].sum())
        early += np.bincount(tokens[:cut], minlength=len(pseudo))
        tokens, lengths = tokens[cut:], lengths[n_early:]
        offset += n_sess
        if len(tokens) < 2:
            continue
        last = np.cumsum(lengths)[lengths > 0] - 1  # each session's last position
        ok = np.ones(len(tokens) - 1, bool)
        ok[last[last < len(tokens) - 1]] = False
        q, t = tokens[:-1], tokens[1:]
        ok &= pseudo[q] & (q != t)
        qs.append(q[ok])
        ts.append(t[ok])
    q = np.concatenate(qs).astype(np.int64) if qs else np.zeros(0, np.int64)
    t = np.concatenate(ts).astype(np.int64) if ts else np.zeros(0, np.int64)
    if len(q) > limit:
        keep = np.sort(rng.choice(len(q), limit, replace=False))
        q, t = q[keep], t[keep]
    return q, t, early


def pair_hits(queries: np.ndarray, q_rows: np.ndarray, targets: np.ndarray, counts: np.ndarray,
              space: np.ndarray, context: np.ndarray, k: int = 10, grid=GRID,
              block: int = 512, query_tokens=None, shared: dict | None = None) -> np.ndarray:
    """bool [pairs, settings]: whether each pair is a hit at ``k`` under each ``grid`` setting:
    fewer than ``k`` candidates (never the query item itself) rank above its next item (a higher
    score, or an equal one and a lower row, as the index breaks ties). ``same:<column>``
    settings need ``query_tokens`` (each pair's query tokens) and ``shared`` ({column:
    :class:`SharedValues` of the candidates})."""
    hits = np.zeros((len(q_rows), len(grid)), bool)
    rows = np.arange(len(q_rows))
    cols = np.arange(len(counts))[None]
    for s in range(0, len(q_rows), block):
        e = min(s + block, len(q_rows))
        r = rows[: e - s]
        base = {}
        for g, (scoring, weight) in enumerate(grid):
            if scoring.startswith(SAME):
                if scoring not in base:
                    base[scoring] = shared[scoring[len(SAME):]](query_tokens[s:e])
                sc = cold_scores(queries[s:e], scoring, weight, counts, space, context,
                                 base[scoring])
            else:
                if scoring not in base:
                    base[scoring] = cold_scores(queries[s:e], scoring, 0.0, counts, space,
                                                context)
                sc = (base[scoring]
                      + np.float32(weight) * np.log1p(counts).astype(np.float32)[None])
            sc[r, q_rows[s:e]] = -np.inf
            st = sc[r, targets[s:e]][:, None]
            # Ties rank the lower row (the more engaged item) first, as the index does.
            above = ((sc > st) | ((sc == st) & (cols < targets[s:e, None]))).sum(axis=1)
            hits[s:e, g] = above < k
    return hits


def hit_rates(*args, **kwargs) -> list[float]:
    """HR@k of every setting (:func:`pair_hits` averaged over the pairs)."""
    hits = pair_hits(*args, **kwargs)
    return hits.mean(axis=0).tolist() if len(hits) else [0.0] * hits.shape[1]


def pick(hits: np.ndarray, grid=GRID) -> int:
    """The setting chosen from per-pair hits: the best HR's scoring family, and in it the
    smallest popularity weight whose HR is within one paired standard error of the best (the
    one-standard-error rule: a larger weight must earn its place beyond noise)."""
    rates = hits.mean(axis=0)
    best = int(np.argmax(rates))  # the first of equals
    family = [g for g, (scoring, _) in enumerate(grid) if scoring == grid[best][0]]
    for g in sorted(family, key=lambda g: _simplicity(grid[g])):
        diff = hits[:, best].astype(np.float64) - hits[:, g]
        se = diff.std(ddof=1) / np.sqrt(len(diff))
        if rates[best] - rates[g] <= se:
            return g
    return best


def choose(queries, q_rows, targets, counts, space, context, k: int = 10,
           item_tokens: list[list[str]] | None = None, columns=()) -> dict:
    """The setting chosen (:func:`pick`) on the validation pairs among :func:`grid_for`
    ``columns`` (``same:`` families need ``item_tokens``, each candidate row's tokens), with the
    HR of every setting."""
    pairs = len(q_rows)
    if pairs < MIN_PAIRS:
        return {**DEFAULT, "chosen_by": f"default (only {pairs} validation pairs)",
                "validation": {"pairs": pairs}}
    columns = list(columns) if item_tokens is not None else []
    grid = grid_for(columns)
    shared = {c: SharedValues(item_tokens, c) for c in columns}
    q_tokens = [item_tokens[r] for r in q_rows] if columns else None
    hits = pair_hits(queries, q_rows, targets, counts, space, context, k, grid,
                     query_tokens=q_tokens, shared=shared)
    rates = hits.mean(axis=0).tolist()
    scoring, weight = grid[pick(hits, grid)]
    return {"scoring": scoring, "popularity": weight, "chosen_by": "validation",
            "validation": {"pairs": pairs, "k": k,
                           "hr": {f"{s} {w:g}": round(h, 4) for (s, w), h in zip(grid, rates)}}}
