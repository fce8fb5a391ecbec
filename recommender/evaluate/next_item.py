"""Offline next-item evaluation of related-item tables against popular and co-occurrence baselines.

For every consecutive pair ``(a, b)`` in a held-out session, ask each recommender for the top-K
related items of ``a`` and check whether ``b`` is among them. A query for an item the recommender
has never seen is a miss (and counted separately, so sparse data shows up rather than hiding).

Metrics (one relevant item per query): ``HR@K`` = share of hits; ``MRR@K`` = mean of 1/rank;
``NDCG@K`` = mean of 1/log2(rank + 1); ``coverage`` = distinct items served in any top-K list over
the training catalogue; ``unknown`` = share of queries whose item has no row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recommender.core.artifacts import read_manifest
from recommender.core.errors import ArtifactError, ConfigError, Pin2VecError
from recommender.core.sessions import iter_session_batches
from recommender.evaluate.baselines import ItemCounter
from recommender.evaluate.splits import _is_test, split_cutoff

log = logging.getLogger(__name__)

# rows (int64 [n]) -> top-K table (int32 [n, K], -1 padded) over the recommender's own vocabulary
TableFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Recommender:
    """A named related-items table over a vocabulary."""

    name: str
    item_ids: pa.Array  # string ids, row order of the table
    rows: TableFn


@dataclass(frozen=True)
class Result:
    name: str
    hr: float
    mrr: float
    ndcg: float
    coverage: float
    unknown: float
    queries: int


@dataclass
class EvalData:
    """Held-out next-item pairs plus the baselines' counts from the training sessions."""

    queries: pa.Array
    targets: pa.Array
    counter: ItemCounter


def next_item_pairs(items: pa.ListArray) -> tuple[pa.Array, pa.Array]:
    """Consecutive ``(a, b)`` pairs inside each session of a list<string> column."""
    return target_pairs(items, 1)


def target_pairs(items: pa.ListArray, window: int = 1) -> tuple[pa.Array, pa.Array]:
    """``(query, targets)`` for every item of a session that has a next item.

    ``window`` = 1: the target is the next item (a string array). ``window`` = N > 1: the targets
    are the next N items of the same session (``fixed_size_list<string>[N]``, null past the
    session's end); a query is a hit when any of them is in the top K (see :func:`score`).
    """
    if window < 1:
        raise ConfigError(f"the target window must be >= 1, got {window}")
    flat = pc.list_flatten(items)
    if len(flat) < 2:
        empty = flat.slice(0, 0)
        if window == 1:
            return empty, empty
        return empty, pa.FixedSizeListArray.from_arrays(empty, window)
    parents = pc.list_parent_indices(items).to_numpy()
    starts = np.nonzero(parents[:-1] == parents[1:])[0]
    if window == 1:
        return flat.take(pa.array(starts)), flat.take(pa.array(starts + 1))
    ahead = starts[:, None] + np.arange(1, window + 1)[None, :]
    inside = ahead < len(flat)
    inside[inside] &= parents[ahead[inside]] == parents[np.repeat(starts, window)
                                                          .reshape(-1, window)[inside]]
    index = pa.array(np.where(inside, ahead, 0).ravel(), mask=~inside.ravel())
    targets = pa.FixedSizeListArray.from_arrays(flat.take(index), window)
    return flat.take(pa.array(starts)), targets


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


def load_eval_data(
    sessions_dir: str | Path,
    test_sessions_dir: str | Path | None = None,
    test_fraction: float = 0.2,
    cooc_window: int = 5,
    target_window: int = 1,
) -> EvalData:
    """Training counts and test pairs: from two directories, or a time split of one.

    ``target_window`` > 1 scores any of the next N items of the session (:func:`target_pairs`).
    """
    counter = ItemCounter(cooc_window)
    queries, targets = [], []
    if test_sessions_dir is not None:
        for batch in iter_session_batches(sessions_dir, ("items",), 65_536):
            counter.add(batch.column(0))
        for batch in iter_session_batches(test_sessions_dir, ("items",), 65_536):
            q, t = target_pairs(batch.column(0), target_window)
            queries.append(q)
            targets.append(t)
    else:
        cutoff = split_cutoff(sessions_dir, test_fraction)
        for batch in iter_session_batches(sessions_dir, ("session_id", "start", "items"), 65_536):
            test = _is_test(batch, cutoff)
            counter.add(batch.filter(pa.array(~test)).column("items"))
            q, t = target_pairs(batch.filter(pa.array(test)).column("items"), target_window)
            queries.append(q)
            targets.append(t)
    if not queries or sum(len(q) for q in queries) == 0:
        raise Pin2VecError("the test sessions hold no consecutive item pairs to evaluate")
    return EvalData(pa.concat_arrays(queries), pa.concat_arrays(targets), counter)


def score(rec: Recommender, queries: pa.Array, targets: pa.Array, k: int, catalogue: int) -> Result:
    """HR/MRR/NDCG@k, coverage and unknown share of one recommender on ``(query, target)`` pairs."""
    q = pc.index_in(queries, value_set=rec.item_ids).to_numpy(zero_copy_only=False)
    width = targets.type.list_size if pa.types.is_fixed_size_list(targets.type) else 1
    flat_targets = targets.flatten() if width > 1 else targets
    t = pc.index_in(flat_targets, value_set=rec.item_ids).to_numpy(zero_copy_only=False)
    t = t.reshape(len(q), width)  # one column per target; NaN = unknown or past the session end
    known = ~np.isnan(q)
    qrows = q[known].astype(np.int64)
    trows = np.where(np.isnan(t[known]), -2, t[known]).astype(np.int64)
    unique, inverse = np.unique(qrows, return_inverse=True)
    table = rec.rows(unique)[:, :k] if len(unique) else np.empty((0, k), np.int32)
    if table.shape[1] < k:
        raise ConfigError(f"{rec.name} holds only {table.shape[1]} related items per item; k={k}")
    match = (table[inverse][:, :, None] == trows[:, None, :]).any(axis=2)
    hit = match.any(axis=1)
    rank = match.argmax(axis=1) + 1
    n = len(q)
    served = np.unique(table[table >= 0])
    return Result(
        name=rec.name,
        hr=float(hit.sum() / n),
        mrr=float((hit / rank).sum() / n),
        ndcg=float((hit / np.log2(rank + 1)).sum() / n),
        coverage=float(len(served) / max(catalogue, 1)),
        unknown=float(1 - known.mean()),
        queries=n,
    )


def baselines(counter: ItemCounter, k: int) -> list[Recommender]:
    ids = pa.array(counter.item_ids, pa.string())
    popular, cooc = counter.popular_table(k), counter.cooccurrence_table(k)
    return [
        Recommender("co-occurrence", ids, lambda rows: cooc[rows]),
        Recommender("most-popular", ids, lambda rows: popular[rows]),
    ]


def index_recommender(index_dir: str | Path) -> Recommender:
    """The related table of an INDEX dir (``neighbors.npy`` + ``items.parquet``)."""
    manifest = read_manifest(index_dir, "index")
    path = Path(index_dir)
    try:
        neighbors = np.load(path / "neighbors.npy", mmap_mode="r", allow_pickle=False)
        ids = pq.read_table(path / "items.parquet", columns=["item_id"]).column(0)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"cannot read the related table in {path}: {e}") from None
    name = f"pin2vec ({manifest.get('scoring', 'similar')})"
    return Recommender(name, ids.combine_chunks(), lambda rows: np.asarray(neighbors[rows]))


def model_recommender(model, scoring: str, k: int) -> Recommender:
    """Exact top-k neighbours of a trained model (``train.Model``) for the queried rows only."""
    from recommender.index.build import exact_neighbors

    if scoring == "similar":
        queries, items, metric = model.vectors, model.vectors, "cosine"
    elif scoring == "complementary":
        queries, items, metric = model.vectors, model.context_vectors, "dot"
    else:
        raise ConfigError(f"scoring must be 'similar' or 'complementary', got {scoring!r}")

    def rows(r: np.ndarray) -> np.ndarray:
        idx, _ = exact_neighbors(queries[r], items, k, metric, exclude_self_rows=r)
        return idx

    return Recommender(f"pin2vec ({scoring})", pa.array(model.item_ids, pa.string()), rows)


def evaluate(recommenders: list[Recommender], data: EvalData, k: int) -> list[Result]:
    """Score each recommender on the same held-out pairs."""
    catalogue = len(data.counter.item_ids)
    return [score(rec, data.queries, data.targets, k, catalogue) for rec in recommenders]


def leakage_warning(model_manifest: dict | None, sessions_dir, test_sessions_dir) -> str | None:
    """A warning when the model was trained on the very sessions it is tested on."""
    from recommender.core.artifacts import file_digest

    source = (model_manifest or {}).get("source_digest")
    if not source:
        return None
    tested = Path(test_sessions_dir or sessions_dir) / "manifest.json"
    if source == file_digest(tested):
        part = ("the test sessions" if test_sessions_dir
                else "all of --sessions, test period included")
        return (f"WARNING: the model was trained on {part}: these numbers are optimistic. Train on "
                "the earlier part only (`pin2vec run` splits by time for you).")
    return None


def _model_manifest(index_dir) -> dict | None:
    model_dir = read_manifest(index_dir, "index").get("model_dir")
    try:
        return read_manifest(model_dir, "model") if model_dir else None
    except ArtifactError:
        return None  # the model was moved or deleted: nothing to compare against


def verdict(results: list[Result]) -> str:
    """One plain sentence on whether the model earns its keep against the baselines."""
    model, cooc, pop = results[0], results[1], results[2]
    if model.hr > cooc.hr:
        lift = f"{model.hr / cooc.hr:.2f}x" if cooc.hr > 0 else "infinitely"
        return f"the model beats co-occurrence ({lift} HR) and most-popular."
    msg = (
        f"WARNING: co-occurrence matches or beats the model (HR {cooc.hr:.4f} vs {model.hr:.4f}): "
        "the embeddings do not earn their keep on this data. Try `pin2vec tune`, more data, "
        "or serve co-occurrence."
    )
    if model.hr <= pop.hr:
        msg += " The model does not even beat most-popular."
    return msg


def format_table(results: list[Result], k: int) -> str:
    head = f"{'recommender':<26}{'HR@' + str(k):>9}{'MRR@' + str(k):>9}{'NDCG@' + str(k):>9}"
    head += f"{'coverage':>10}{'unknown':>9}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.name:<26}{r.hr:>9.4f}{r.mrr:>9.4f}{r.ndcg:>9.4f}{r.coverage:>10.3f}"
            f"{r.unknown:>9.3f}"
        )
    return "\n".join(lines)


def report(results: list[Result], k: int, target_window: int = 1) -> dict:
    return {"k": k, "target": target_name(target_window),
            "results": [asdict(r) for r in results], "verdict": verdict(results)}
