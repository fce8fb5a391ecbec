"""Next-item scorecard: every scorer on the same held-out pairs, HR/MRR/NDCG at several K.

For each consecutive pair ``(a, b)`` of a held-out session the scorer's top-K related items of
``a`` are checked for ``b``. Queries for items the training sessions never saw are misses for
every scorer (their share is reported as ``unseen``). The breakdown by the query item's
popularity splits the training catalogue by cumulative share of engagements: ``head`` = the most
engaged items making up the first 50% of engagements, ``torso`` the next 30%, ``tail`` the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recommender.core.errors import ConfigError, Pin2VecError
from recommender.scorers.data import SessionData, from_lists

KS = (10, 20)
BUCKETS = ("head", "torso", "tail", "unseen")
HEAD_SHARE, TORSO_SHARE = 0.5, 0.8


@dataclass(frozen=True)
class EvalSplit:
    """Training sessions (as rows) and the held-out next-item pairs, shared by every scorer."""

    train: SessionData
    queries: pa.Array  # string
    targets: pa.Array  # string, or fixed_size_list<string>[N] for "any of the next N items"
    test_lists: pa.Array = None  # the held-out sessions (list<string>)

    @property
    def n_pairs(self) -> int:
        return len(self.queries)


@dataclass
class Score:
    """One scorer's line of the scorecard."""

    name: str
    metrics: dict  # "hr@10", "mrr@10", "ndcg@10", ... -> float
    buckets: dict  # bucket -> {"share": float, "hr@10": float}
    coverage: float
    settings: dict = field(default_factory=dict)
    shipped: bool = False

    def hr(self, k: int = 10) -> float:
        return self.metrics[f"hr@{k}"]


def next_item_pairs(items: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Consecutive ``(a, b)`` pairs inside each session of a list<string> column."""
    return target_pairs(items, 1)


def target_pairs(items: pa.Array, window: int = 1) -> tuple[pa.Array, pa.Array]:
    """``(query, targets)`` for every item of a session that has a next item.

    ``window`` = 1: the target is the next item (a string array). ``window`` = N > 1: the targets
    are the next N items of the same session (``fixed_size_list<string>[N]``, null past the
    session's end); a query is a hit when any of them is in the top K (see :func:`score_table`).
    """
    if window < 1:
        raise ConfigError(f"the target window must be >= 1, got {window}")
    if isinstance(items, pa.ChunkedArray):
        items = items.combine_chunks()
    flat = pc.list_flatten(items)
    if len(flat) < 2:
        empty = flat.slice(0, 0)
        return empty, (empty if window == 1 else pa.FixedSizeListArray.from_arrays(empty, window))
    parents = pc.list_parent_indices(items).to_numpy()
    starts = np.nonzero(parents[:-1] == parents[1:])[0]
    if window == 1:
        return flat.take(pa.array(starts)), flat.take(pa.array(starts + 1))
    ahead = starts[:, None] + np.arange(1, window + 1)[None, :]
    inside = ahead < len(flat)
    same = np.zeros_like(inside)
    same[inside] = parents[ahead[inside]] == np.repeat(parents[starts], window).reshape(
        -1, window)[inside]
    index = pa.array(np.where(same, ahead, 0).ravel(), mask=~same.ravel())
    return flat.take(pa.array(starts)), pa.FixedSizeListArray.from_arrays(flat.take(index), window)


def parse_target(tokens: list[str] | str | None) -> int:
    """``--target next`` -> 1; ``--target window N`` -> N (any of the next N items)."""
    if tokens is None:
        return 1
    tokens = tokens.split() if isinstance(tokens, str) else list(tokens)
    if tokens == ["next"]:
        return 1
    if len(tokens) == 2 and tokens[0] == "window" and tokens[1].isdigit() and int(tokens[1]) >= 1:
        return int(tokens[1])
    raise ConfigError(f"--target must be 'next' or 'window N' (N >= 1), got {' '.join(tokens)!r}")


def target_name(window: int) -> str:
    return "next item" if window == 1 else f"any of the next {window} items in the session"


def make_split(train_lists: pa.Array, test_lists: pa.Array, target_window: int = 1) -> EvalSplit:
    """An :class:`EvalSplit` of training and held-out sessions (list<string> columns)."""
    q, t = target_pairs(test_lists, target_window)
    if len(q) == 0:
        raise Pin2VecError("the held-out sessions hold no consecutive item pairs to evaluate")
    return EvalSplit(from_lists(train_lists), q, t, test_lists)


def time_split_lists(sessions_dir: str | Path, test_fraction: float
                     ) -> tuple[pa.Array, pa.Array]:
    """(train, test) list<string> columns: the latest ``test_fraction`` of sessions are test."""
    from recommender.core.sessions import iter_session_batches
    from recommender.evaluate.splits import _is_test, split_cutoff

    cutoff = split_cutoff(sessions_dir, test_fraction)
    train, test = [], []
    for batch in iter_session_batches(sessions_dir, ("session_id", "start", "items"), 262_144):
        is_test = pa.array(_is_test(batch, cutoff))
        train.append(batch.column("items").filter(pc.invert(is_test)))
        test.append(batch.column("items").filter(is_test))
    typ = pa.list_(pa.string())
    return (pa.chunked_array(train, typ).combine_chunks(),
            pa.chunked_array(test, typ).combine_chunks())


def popularity_buckets(counts: np.ndarray) -> np.ndarray:
    """Bucket index (0 head, 1 torso, 2 tail) of every training item by engagement share."""
    order = np.lexsort((np.arange(len(counts)), -counts))
    total = max(int(counts.sum()), 1)
    before = (np.cumsum(counts[order]) - counts[order]) / total  # share before this item
    bucket = np.where(before < HEAD_SHARE, 0, np.where(before < TORSO_SHARE, 1, 2))
    out = np.empty(len(counts), np.int64)
    out[order] = bucket
    return out


def score_table(name: str, item_ids: pa.Array, neighbors: np.ndarray, split: EvalSplit,
                ks=KS, settings: dict | None = None) -> Score:
    """Scorecard line of a [V, K] neighbour table over ``item_ids`` on ``split``'s pairs."""
    kmax = max(ks)
    if neighbors.shape[1] < kmax:
        raise Pin2VecError(f"{name} holds {neighbors.shape[1]} related items per item; "
                           f"the scorecard needs {kmax}")
    q = pc.index_in(split.queries, value_set=item_ids).fill_null(-1).to_numpy(
        zero_copy_only=False).astype(np.int64)
    targets = split.targets
    width = targets.type.list_size if pa.types.is_fixed_size_list(targets.type) else 1
    flat_targets = targets.flatten() if width > 1 else targets
    # one column per target; -2 = unknown to this scorer or past the session's end
    t = pc.index_in(flat_targets, value_set=item_ids).fill_null(-2).to_numpy(
        zero_copy_only=False).astype(np.int64).reshape(-1, width)
    n = len(q)
    known = q >= 0
    table = np.full((n, kmax), -1, np.int64)
    table[known] = neighbors[q[known], :kmax]
    match = (table[:, :, None] == t[:, None, :]).any(axis=2)
    first = np.where(match.any(axis=1), match.argmax(axis=1) + 1, 10**9)
    metrics = {}
    for k in ks:
        hit = first <= k
        metrics[f"hr@{k}"] = float(hit.mean())
        metrics[f"mrr@{k}"] = float(np.where(hit, 1.0 / first, 0.0).mean())
        metrics[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(first + 1), 0.0).mean())
    # popularity buckets come from the training counts, shared by every scorer
    train_rows = split.train.row_of(split.queries)
    bucket = np.full(n, 3, np.int64)
    seen = train_rows >= 0
    bucket[seen] = popularity_buckets(split.train.counts)[train_rows[seen]]
    k0 = min(ks)
    buckets = {}
    for i, b in enumerate(BUCKETS):
        m = bucket == i
        buckets[b] = {"share": float(m.mean()),
                      f"hr@{k0}": float((first[m] <= k0).mean()) if m.any() else 0.0}
    served = np.unique(table[known][:, :k0])
    coverage = float(len(served[served >= 0]) / max(split.train.n_items, 1))
    return Score(name, metrics, buckets, coverage, settings or {})


def format_scorecard(scores: list[Score], ks=KS) -> str:
    """The scorecard as a fixed-width text table, the shipped scorer marked with ``*``."""
    cols = [f"{m}@{k}" for k in ks for m in ("hr", "mrr", "ndcg")]
    k0 = min(ks)
    w = max([34, *(len(s.name) + 1 for s in scores)])
    head = f"  {'scorer':<{w}}" + "".join(f"{c.upper():>9}" for c in cols)
    head += "".join(f"{b + ' HR':>11}" for b in BUCKETS[:3]) + f"{'cover':>7}"
    lines = [head, "  " + "-" * (len(head) - 2)]
    for s in scores:
        mark = "*" if s.shipped else " "
        line = f"{mark} {s.name:<{w}}" + "".join(f"{s.metrics[c]:>9.4f}" for c in cols)
        line += "".join(f"{s.buckets[b][f'hr@{k0}']:>11.4f}" for b in BUCKETS[:3])
        lines.append(line + f"{s.coverage:>7.2f}")
    if scores:
        b = scores[0].buckets
        lines.append("  queries: " + ", ".join(f"{name} {b[name]['share']:.0%}" for name in BUCKETS)
                     + f" (head/torso/tail: items making up the first {HEAD_SHARE:.0%} / next "
                     f"{TORSO_SHARE - HEAD_SHARE:.0%} / last {1 - TORSO_SHARE:.0%} of training "
                     "engagements; unseen: not in training, a miss for every scorer)")
    return "\n".join(lines)
