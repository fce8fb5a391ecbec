"""How cold items are matched, chosen by validation on the training data (pseudo-cold items).

A share of the trained items that carry attribute values (``AttributeConfig.validation``, 10%)
is left out of the attribute replay (:mod:`recommender.train.attributes`): their engagements
still train the item vectors, but no attribute vector learns from them, so to the attributes
they are as new as a product added after training. After the last epoch, the next-item pairs
whose query is one of them, taken from the latest 30% of the training sessions (by session
start time; corpus order when no times are known), are scored from the query's attribute vector
alone with every setting of :func:`grid_for` (:func:`recommender.core.attributes.cold_scores`:
cosine in attribute space or the skip-gram logit against the context vectors, each plus a
popularity weight that reads the engagements of the earlier sessions, as the test reads
training counts). The best HR@10 names the scoring; within it, the simplest setting whose
HR@10 is within one paired standard error of the best is chosen (:func:`pick`) and recorded in
the MODEL (``attributes.json`` ``cold_scoring``, manifest ``attributes_training.cold_scoring``).
The index uses it for cold rows unless told otherwise. Nothing outside the training sessions is
read.

The grid also holds, for each attribute column, the ``same:<column>`` family: candidates
sharing a value of the column with the query first, ranked by ``w * log(1 + engagements) +
(1 - w) * cosine``. Its weight 1 *is* the baseline the evaluation measures against (most popular
within the same value, then most popular), so where attribute vectors carry no signal beyond
the value the choice can fall back to it; within this family the one-standard-error rule keeps
the weight closest to the baseline (1 first, then 0.3, 0.1, 0.03, 0).

The popularity weight matters because logs differ: on a rating-like log the item after a new
film is mostly a popular one (a large weight wins), in click sessions of fading products it is
a recent, rarely counted one (weight 0 wins). A fixed default was right on one kind only.

**Recency.** In click logs of products that fade within weeks, the item after a new product is
one of the products in fashion now, not the most engaged over the whole log. When the sessions'
start times are known (a SESSIONS dir always has them), the popularity term may therefore read
*recent* engagements: each engagement counts ``0.5 ** (age / half-life)``, its age measured from
the latest session, the half-life a share (:data:`HALF_LIVES`) of the training span. Whether it
does is decided before the grid, without the attribute vectors (:func:`popularity_source`): the
engagements of the sessions before the late ones, all-time and recent (ages from the first late
session), each predict the items engaged with in the late sessions; a half-life replaces the
all-time counts only when the log-likelihood it gives them beats theirs by more than two
standard errors. The grid then reads the chosen engagements (trying them as extra grid settings
was dropped: it triples the grid, and on a log without drift noise then chose them). The chosen
recent engagements are saved with the attribute vectors (``attribute_popularity.npy``) for the
index and lookups.

The validation's candidates, like the test's, are the items the model knew at its cut: those
engaged with before the late sessions (next items first engaged later are left out). Before
this, items launched during the late sessions competed as candidates that no popularity term can
rank, and the grid chose pure attribute matching on the sparse benchmark log, where the test
favours the popularity of recent engagements (cold HR@10 0.211 vs 0.128).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from recommender.core.attributes import SAME, SharedValues, cold_scores
from recommender.core.vectors import unit_rows

# (scoring, popularity weight) settings tried, simplest first (ties keep the earlier one).
GRID = (("space", 0.0), ("space", 0.01), ("space", 0.03), ("space", 0.1),
        ("space", 0.3), ("context", 0.0), ("context", 0.25), ("context", 0.5), ("context", 0.75),
        ("context", 1.0))
# "same:<column>" settings, one family per attribute column: weight 1 is exactly the baseline
# "most popular within the same value" (so the choice can always fall back to it), lower
# weights mix in attribute cosine within the same value (recommender.core.attributes).
SAME_WEIGHTS = (1.0, 0.3, 0.1, 0.03, 0.0)
# Half-lives of recent engagements tried, as shares of the training sessions' time span.
HALF_LIVES = (0.03, 0.1, 0.3)
RECENCY_SE = 2.0  # recent engagements must beat all-time ones by this many standard errors


def grid_for(columns) -> tuple:
    """:data:`GRID` plus a ``same:<column>`` family for each attribute column."""
    return GRID + tuple((f"{SAME}{c}", w) for c in columns for w in SAME_WEIGHTS)


def _simplicity(setting) -> float:
    """Sort key within a family for the one-standard-error rule: no popularity first for
    ``space``/``context``; the plain baseline (weight 1) first for ``same:``."""
    scoring, weight = setting
    return -weight if scoring.startswith(SAME) else weight


DEFAULT = {"scoring": "space", "popularity": 0.0, "recency": 0.0}  # too few validation pairs
MIN_PAIRS = 30  # fewer validation pairs than this: the default, not a noisy choice
LATE = 0.3  # validation pairs come from this latest share of the training sessions
MAX_SCORES = 2e8  # pairs x candidates scored per setting at most (pairs are sampled down)


class Validation(NamedTuple):
    """What :func:`validation_pairs` gathers in one pass over the training sessions."""

    queries: np.ndarray  # int64 rows of the pseudo-cold queries
    targets: np.ndarray  # int64 rows of their next items
    early: dict  # {recency: float64 [items]}: engagements before the late sessions (0: counts)
    late: np.ndarray  # float64 [items]: engagements in the late sessions
    final: dict  # {recency > 0: float64 [items]}: recent engagements over all sessions
    half_life: dict  # {recency > 0: half-life in the times' unit}


def validation_pairs(chunks, pseudo: np.ndarray, sessions: int, limit: int,
                     rng: np.random.Generator, late: float = LATE, times=None,
                     half_lives=()) -> Validation:
    """The consecutive distinct pairs, within a session of the latest ``late`` share of the
    ``sessions``, whose query is marked in ``pseudo`` (at most ``limit``, sampled), and the
    engagements the popularity weights read: each item's in the sessions before the late ones,
    all-time and recent (:data:`HALF_LIVES`), and its recent ones over all sessions.

    ``times``: each session's start (float, corpus order); latest means latest start. Without
    them the corpus order is the time order and no recent engagements are counted (the
    ``half_lives`` are ignored). Like the evaluation's time split, the next items come from
    later sessions than the engagements the popularity weight reads, so a weight that only fits
    stale popularity is not chosen.
    """
    n_items = len(pseudo)
    if times is None:
        times, half_lives = np.arange(sessions, dtype=np.float64), ()
    times = np.asarray(times, np.float64)
    order = np.argsort(times, kind="stable")
    is_late = np.zeros(sessions, bool)
    is_late[order[int(np.floor(sessions * (1 - late))):]] = True
    span = float(times.max() - times.min()) if sessions else 0.0
    half_lives = [h for h in half_lives if h > 0] if span > 0 else []
    t_cut = float(times[is_late].min()) if is_late.any() else float("inf")
    t_end = float(times.max()) if sessions else 0.0
    early = {0.0: np.zeros(n_items)}
    early.update({h: np.zeros(n_items) for h in half_lives})
    final = {h: np.zeros(n_items) for h in half_lives}
    late_counts = np.zeros(n_items)
    qs, ts = [], []
    offset = 0
    for tokens, lengths in chunks:
        n_sess = len(lengths)
        sess_late = is_late[offset:offset + n_sess]
        sess_time = times[offset:offset + n_sess]
        offset += n_sess
        tok_late = np.repeat(sess_late, lengths)
        tok_time = np.repeat(sess_time, lengths)
        before = tokens[~tok_late]
        early[0.0] += np.bincount(before, minlength=n_items)
        late_counts += np.bincount(tokens[tok_late], minlength=n_items)
        for h in half_lives:
            early[h] += np.bincount(before, 0.5 ** ((t_cut - tok_time[~tok_late]) / (h * span)),
                                    n_items)
            final[h] += np.bincount(tokens, 0.5 ** ((t_end - tok_time) / (h * span)), n_items)
        if len(tokens) < 2:
            continue
        last = np.cumsum(lengths)[lengths > 0] - 1  # each session's last position
        ok = tok_late[:-1].copy()
        ok[last[last < len(tokens) - 1]] = False
        q, t = tokens[:-1], tokens[1:]
        ok &= pseudo[q] & (q != t)
        qs.append(q[ok])
        ts.append(t[ok])
    q = np.concatenate(qs).astype(np.int64) if qs else np.zeros(0, np.int64)
    t = np.concatenate(ts).astype(np.int64) if ts else np.zeros(0, np.int64)
    # As in the test, where next items first engaged after training cannot be returned: only
    # next items engaged before the late sessions (the candidates, see choose).
    known = early[0.0][t] > 0
    q, t = q[known], t[known]
    if len(q) > limit:
        keep = np.sort(rng.choice(len(q), limit, replace=False))
        q, t = q[keep], t[keep]
    return Validation(q, t, early, late_counts, final, {h: h * span for h in half_lives})


def popularity_source(v: Validation, smooth: float = 0.1) -> tuple[float, dict]:
    """(recency, record): which engagements the popularity term reads -- 0.0 for all-time, or
    the half-life share of recent ones -- and the evidence. Each candidate source's engagements
    before the late sessions (``v.early``), as a distribution over the items mixed with
    ``smooth`` of the uniform one, gives every engagement in the late sessions a
    log-probability; a half-life wins when its mean gain over all-time counts exceeds
    :data:`RECENCY_SE` standard errors (the best such one)."""
    n = float(v.late.sum())
    if n < 2 or len(v.early) < 2:
        return 0.0, {}
    seen = v.late > 0
    w = v.late[seen]

    def logp(pop):
        total = pop.sum()
        p = ((1 - smooth) * pop / total if total > 0 else 0.0) + smooth / len(pop)
        return np.log(p[seen])

    base = logp(v.early[0.0])
    record = {"tokens": int(n), "all_time": round(float((w * base).sum() / n), 4)}
    best, best_gain = 0.0, 0.0
    for h in sorted(k for k in v.early if k > 0):
        lp = logp(v.early[h])
        d = lp - base
        mean = float((w * d).sum() / n)
        se = float(np.sqrt((w * (d - mean) ** 2).sum() / (n - 1) / n))
        record[f"recent {h:g}"] = round(float((w * lp).sum() / n), 4)
        if mean > RECENCY_SE * se and mean > best_gain:
            best, best_gain = h, mean
    return best, record


def pair_hits(queries: np.ndarray, q_rows: np.ndarray, targets: np.ndarray, counts: np.ndarray,
              space: np.ndarray, context: np.ndarray, k: int = 10, grid=GRID,
              block: int = 512, query_tokens=None, shared: dict | None = None,
              candidates: np.ndarray | None = None) -> np.ndarray:
    """bool [pairs, settings]: whether each pair is a hit at ``k`` under each ``grid`` setting:
    fewer than ``k`` candidates (never the query item itself) rank above its next item (a higher
    score, or an equal one and a lower row, as the index breaks ties). ``same:<column>``
    settings need ``query_tokens`` (each pair's query tokens) and ``shared`` ({column:
    :class:`SharedValues` of the candidates}). ``candidates``: bool mask of the rows that may
    be returned (default all)."""
    hits = np.zeros((len(q_rows), len(grid)), bool)
    rows = np.arange(len(q_rows))
    cols = np.arange(len(counts))[None]
    log_counts = np.log1p(counts).astype(np.float32)[None]
    unit_space = unit_rows(np.asarray(space, np.float32))  # once, not per setting and block
    excluded = None if candidates is None else ~np.asarray(candidates, bool)
    for s in range(0, len(q_rows), block):
        e = min(s + block, len(q_rows))
        r = rows[: e - s]
        # The queries' cosine with the candidates: the float32 numbers query_cosine computes.
        cos = unit_rows(np.asarray(queries[s:e], np.float32)) @ unit_space.T
        base = {}
        for g, (scoring, weight) in enumerate(grid):
            if scoring.startswith(SAME):
                if scoring not in base:
                    base[scoring] = shared[scoring[len(SAME):]](query_tokens[s:e])
                sc = cold_scores(queries[s:e], scoring, weight, counts, space, context,
                                 base[scoring], cosine=cos)
                if excluded is not None:
                    sc[:, excluded] = -np.inf
            else:
                if scoring not in base:
                    base[scoring] = cold_scores(queries[s:e], scoring, 0.0, counts, space,
                                                context, cosine=cos)
                    if excluded is not None:  # stays -inf whatever weight is added
                        base[scoring][:, excluded] = -np.inf
                sc = base[scoring] + np.float32(weight) * log_counts
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
           item_tokens: list[list[str]] | None = None, columns=(),
           candidates: np.ndarray | None = None) -> dict:
    """The setting chosen (:func:`pick`) on the validation pairs among :func:`grid_for`
    ``columns`` (``same:`` families need ``item_tokens``, each candidate row's tokens), with the
    HR of every setting. ``candidates``: the rows that may be returned (default all): the items
    engaged with before the late sessions, as the test's are the items trained on."""
    pairs = len(q_rows)
    if pairs < MIN_PAIRS:
        return {**DEFAULT, "chosen_by": f"default (only {pairs} validation pairs)",
                "validation": {"pairs": pairs}}
    columns = list(columns) if item_tokens is not None else []
    grid = grid_for(columns)
    shared = {c: SharedValues(item_tokens, c) for c in columns}
    q_tokens = [item_tokens[r] for r in q_rows] if columns else None
    hits = pair_hits(queries, q_rows, targets, counts, space, context, k, grid,
                     query_tokens=q_tokens, shared=shared, candidates=candidates)
    rates = hits.mean(axis=0).tolist()
    scoring, weight = grid[pick(hits, grid)]
    return {"scoring": scoring, "popularity": weight, "recency": 0.0, "chosen_by": "validation",
            "validation": {"pairs": pairs, "k": k,
                           "hr": {f"{s} {w:g}": round(h, 4) for (s, w), h in zip(grid, rates)}}}
