"""Cold-start evaluation: how well are items nobody has engaged with served from their attributes?

A share of the catalogue items seen in training is *held out entirely*: every engagement with them
is removed from the training sessions, as if they had been added to the catalogue after training.
The model is trained twice on what remains, without and with attributes, and next-item pairs
``(query, next item)`` of the test sessions are scored by HR@k in three slices:

* ``cold`` -- the query is a held-out item. pin2vec answers from the item's attribute vector,
  scored against the trained items as the index scores cold rows: with the model's validated
  choice (:mod:`recommender.train.cold_choice`, made on pseudo-cold items of the *kept*
  training sessions, so the held-out items play no part in it), and with fixed alternatives;
  the baselines are the most popular items and the most popular items sharing a value of one
  attribute with the query (``popular-same-<column>``, each column separately; the best of them
  is the bar the cold-start target is measured against);
* ``warm`` -- the query was trained: learned vectors without vs with attributes;
* ``tail`` -- warm queries with at most ``tail_max`` training engagements, where the attributes
  (blended in with each of ``priors``, see :func:`recommender.index.cold.blend`; the index
  default blends items with at most 2 engagements at prior 1) matter most.
  With prior 0 the warm rows equal "pin2vec" exactly: attribute training leaves the item vectors
  bit-identical unless ``AttributeConfig.update_context`` is set.

Candidates are the trained items in every row (cold items are not returned as related items,
like an index built without ``--cold-candidates``), so rows differ only in how they rank.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from recommender.core.attributes import SAME, SharedValues, cold_scores
from recommender.core.catalog import column_of
from recommender.core.errors import ConfigError
from recommender.core.vectors import top_k_rows, unit_rows
from recommender.index.cold import blend, blend_mask
from recommender.train import TrainConfig, train
from recommender.train.attributes import AttributeConfig, CatalogAttributes


@dataclass(frozen=True)
class ColdEvalConfig:
    """The held-out share and how results are cut."""

    holdout: float = 0.2  # share of trained items (with attributes) held out entirely
    k: int = 10
    seed: int = 0
    tail_max: int = 5  # warm queries with at most this many training engagements are the tail
    # Blending of the "with attributes" rows: (prior, max engagements blended, 0 = any item);
    # (1, 2) is the index default (recommender.index.cold.ColdConfig).
    priors: tuple[tuple[float, int], ...] = ((0.0, 0), (1.0, 2), (3.0, 0))
    # Fixed cold scorings shown beside the model's validated choice: (scoring, popularity).
    alternatives: tuple[tuple[str, float], ...] = (("space", 0.0), ("space", 0.03),
                                                   ("context", 0.75))

    def __post_init__(self):
        if any(not p >= 0 or m < 0 for p, m in self.priors):
            raise ConfigError(f"priors must be >= 0, got {self.priors!r}")
        if not 0 < self.holdout < 1:
            raise ConfigError(f"holdout must be in (0, 1), got {self.holdout!r}")
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k!r}")


@dataclass
class ColdResult:
    slice: str  # cold | warm | tail
    method: str
    hr: float
    queries: int

    def as_dict(self) -> dict:
        return {"slice": self.slice, "method": self.method, "hr": round(self.hr, 4),
                "queries": self.queries}


def _top_k(queries: np.ndarray, items: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
    """Rows of the ``k`` best cosine matches of each query, never ``exclude[i]`` (-1: none);
    ties to the lower row, as in the index (:func:`top_k_rows`)."""
    out = np.empty((len(queries), min(k, len(items))), np.int64)
    q, m = unit_rows(queries.astype(np.float32)), unit_rows(items.astype(np.float32))
    for s in range(0, len(q), 2048):
        scores = q[s:s + 2048] @ m.T
        ex = exclude[s:s + 2048]
        rows = np.flatnonzero(ex >= 0)
        scores[rows, ex[rows]] = -np.inf
        out[s:s + 2048] = top_k_rows(scores, k)
    return out


def _hits(top: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return (top == targets[:, None]).any(axis=1)


class _PopularSame:
    """Most popular trained items sharing a value of ``column`` with the query, then popular."""

    def __init__(self, column, ids, counts, by_id, k):
        self.k, self.popular = k, np.argsort(-counts, kind="stable")[: k + 1]
        lists: dict[str, list[int]] = {}
        for row in np.argsort(-counts, kind="stable"):
            for t in by_id.get(ids[row], ()):
                if column_of(t) == column:
                    lists.setdefault(t, []).append(int(row))
        self.lists, self.counts, self.column = lists, counts, column

    def top(self, tokens: list[str], own: int) -> list[int]:
        pool = {r for t in tokens if column_of(t) == self.column for r in self.lists.get(t, ())}
        pool.discard(own)
        best = sorted(pool, key=lambda r: (-self.counts[r], r))[: self.k]
        for r in self.popular:
            if len(best) == self.k:
                break
            if r != own and r not in best:
                best.append(int(r))
        return best


def evaluate_cold(train_sessions: Sequence[Sequence[str]], test_sessions: Sequence[Sequence[str]],
                  attributes: CatalogAttributes, train_config: TrainConfig = TrainConfig(),
                  attribute_config: AttributeConfig = AttributeConfig(),
                  config: ColdEvalConfig = ColdEvalConfig(), train_times=None) -> dict:
    """Train without and with attributes on ``train_sessions`` minus the held-out items and score
    the test pairs; returns ``{"results": [...], "speed": ..., "counts": ...}``.
    ``train_times``: each training session's start (seconds), which the cold scoring's
    validation uses (:mod:`recommender.train.cold_choice`); without them the sessions are taken
    to be in time order and recent engagements are not tried."""
    by_id = {i: t for i, t in zip(attributes.item_ids, attributes.item_tokens) if t}
    seen = sorted({i for s in train_sessions for i in s})
    eligible = [i for i in seen if i in by_id]
    rng = np.random.default_rng([config.seed, 31])
    held = set(rng.choice(eligible, int(round(config.holdout * len(eligible))), replace=False)
               .tolist()) if eligible else set()
    kept = [[i for i in s if i not in held] for s in train_sessions]
    train_config = replace(train_config, progress=False)
    t0 = time.perf_counter()
    plain = train(kept, train_config)
    t1 = time.perf_counter()
    with_attrs = train(kept, train_config, attributes=(attributes, attribute_config),
                       session_times=train_times)
    t2 = time.perf_counter()
    ids, counts = plain.item_ids, plain.counts
    row = {i: r for r, i in enumerate(ids)}
    attrs = with_attrs.attributes
    # Test pairs, with targets as trained rows (-1: a target no method can return).
    pairs = [(q, t) for s in test_sessions for q, t in zip(s[:-1], s[1:]) if q != t]
    q_ids = [q for q, _ in pairs]
    targets = np.array([row.get(t, -1) for _, t in pairs], np.int64)
    cold = np.array([q in held for q in q_ids], bool)
    warm = np.array([q in row for q in q_ids], bool)
    q_rows = np.array([row.get(q, -1) for q in q_ids], np.int64)
    q_counts = np.where(warm, counts[np.maximum(q_rows, 0)], 0)
    tail = warm & (q_counts <= config.tail_max)
    k = config.k
    results: list[ColdResult] = []

    def add(slice_, method, hits, mask):
        results.append(ColdResult(slice_, method, float(hits[mask].mean()) if mask.any() else
                                  float("nan"), int(mask.sum())))

    popular = np.argsort(-counts, kind="stable")[: k + 1]
    pop_hits = np.array([t in [r for r in popular if r != o][:k]
                         for t, o in zip(targets.tolist(), q_rows.tolist())], bool)
    columns = [s.name for s in attributes.schema.specs]
    same = {c: _PopularSame(c, ids, counts, by_id, k) for c in columns}
    same_hits = {c: np.array([t in p.top(by_id.get(q, []), o) if c0 else False
                              for q, t, o, c0 in zip(q_ids, targets.tolist(), q_rows.tolist(),
                                                     cold | tail)], bool)
                 for c, p in same.items()}
    # Cold queries: attribute vectors against the trained items' attribute vectors (their
    # learned vector when they have none), as the index does (recommender/index/cold.py).
    cold_idx = np.flatnonzero(cold)
    item_vecs = with_attrs.vectors
    own, own_has = attrs.compose([by_id.get(i, []) for i in ids])
    space = np.where(own_has[:, None], own, item_vecs)
    choice = attrs.info.get("cold_scoring") or {"scoring": "space", "popularity": 0.0}
    recent = bool(choice.get("recency"))  # the choice reads recent engagements
    settings = {"default": (choice["scoring"], float(choice["popularity"]), recent)}
    settings.update({f"{sc} {b:g}": (sc, b, False) for sc, b in config.alternatives})
    # The baseline's own column through cold_scores: weight 1 reproduces the baseline exactly.
    best = max(columns, key=lambda c: same_hits[c][cold].mean() if cold.any() else 0)
    settings.update({f"{SAME}{best} {b:g}": (f"{SAME}{best}", b, False) for b in (1.0, 0.1)})
    if recent:  # the baseline ranked by the same recent engagements the choice reads
        settings[f"{SAME}{best} 1 recent"] = (f"{SAME}{best}", 1.0, True)
    cold_hits = {key: np.zeros(len(pairs), bool) for key in settings}
    if len(cold_idx):
        qv, has = attrs.compose([by_id.get(q_ids[i], []) for i in cold_idx])
        context = np.asarray(with_attrs.context_vectors)
        q_tokens = [by_id.get(q_ids[i], []) for i in cold_idx]
        cand_tokens = [by_id.get(i, []) for i in ids]
        for key, (scoring, b, rec) in settings.items():
            shared = (SharedValues(cand_tokens, scoring[len(SAME):])(q_tokens)
                      if scoring.startswith(SAME) else None)
            scores = cold_scores(qv, scoring, b, attrs.popularity(counts) if rec else counts,
                                 space, context, shared)
            top = top_k_rows(scores, k)  # ties to the lower row, as the index
            cold_hits[key][cold_idx] = _hits(top, targets[cold_idx]) & has
    # Warm queries: learned vectors without attributes, and with them (plus tail blending).
    warm_idx = np.flatnonzero(warm)
    plain_hits = np.zeros(len(pairs), bool)
    attr_hits = {p: np.zeros(len(pairs), bool) for p in config.priors}
    if len(warm_idx):
        qr = q_rows[warm_idx]
        plain_hits[warm_idx] = _hits(_top_k(plain.vectors[qr], plain.vectors, k, qr),
                                     targets[warm_idx])
        for prior, max_count in config.priors:
            blended = np.array(item_vecs, np.float32)
            sel = own_has & blend_mask(counts, max_count)
            if prior > 0:
                blended[sel] = blend(blended[sel], own[sel], counts[sel], prior)
            attr_hits[prior, max_count][warm_idx] = _hits(_top_k(blended[qr], blended, k, qr),
                                                          targets[warm_idx])
    for name, mask in (("cold", cold), ("warm", warm), ("tail", tail)):
        add(name, "popular", pop_hits, mask)
        if name != "warm":
            for c in columns:
                add(name, f"popular-same-{c}", same_hits[c], mask)
        if name == "cold":
            for key, hits in cold_hits.items():
                add(name, "pin2vec attributes" + (" (validated default)" if key == "default"
                                                  else f", {key}"), hits, mask)
        else:
            add(name, "pin2vec", plain_hits, mask)
            for (prior, max_count), hits in attr_hits.items():
                add(name, f"pin2vec + attributes, prior {prior:g}"
                    + (f" (<= {max_count} engagements)" if prior and max_count else ""),
                    hits, mask)
    plain_wps = plain.manifest.get("words_per_second") or 0.0
    attr_wps = with_attrs.manifest.get("words_per_second") or 0.0
    bar = same_hits[best][cold].mean() if cold.any() else float("nan")
    ratios = {key: round(float(h[cold].mean() / bar), 3) if bar else None
              for key, h in cold_hits.items()}
    return {
        "results": [r.as_dict() for r in results],
        "cold_vs_best_attribute": {"column": best, "ratio": ratios},
        "cold_choice": attrs.info.get("cold_scoring"),
        "speed": {"words_per_second": round(plain_wps), "with_attributes": round(attr_wps),
                  "ratio": round(attr_wps / plain_wps, 3) if plain_wps else None,
                  "seconds": round(t1 - t0, 2), "seconds_with_attributes": round(t2 - t1, 2)},
        "counts": {"held_out_items": len(held), "trained_items": len(ids),
                   "pairs": len(pairs), **Counter({"cold": int(cold.sum()),
                                                  "warm": int(warm.sum()),
                                                  "tail": int(tail.sum())})},
        "config": {"holdout": config.holdout, "k": k, "seed": config.seed,
                   "tail_max": config.tail_max, "priors": [list(p) for p in config.priors],
                   "alternatives": [list(a) for a in config.alternatives],
                   "attributes": attribute_config.__dict__},
    }


def cold_sessions(sessions_dir, test_sessions_dir=None, test_fraction: float = 0.2
                  ) -> tuple[list[list[str]], list[list[str]], np.ndarray]:
    """(training sessions, test sessions, the training sessions' starts in seconds) for
    :func:`evaluate_cold` from SESSIONS dirs: ``sessions_dir`` is the training set when
    ``test_sessions_dir`` is given, else it is split by time as ``pin2vec evaluate`` splits it
    (the latest ``test_fraction`` of sessions are the test set)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from recommender.core.sessions import iter_session_batches, read_sessions_table, start_seconds
    from recommender.evaluate.splits import _is_test, split_cutoff

    if test_sessions_dir is not None:
        train = read_sessions_table(sessions_dir, ("start", "items"))
        test = read_sessions_table(test_sessions_dir, ("items",))
        return (train.column("items").to_pylist(), test.column("items").to_pylist(),
                start_seconds(train.column("start")))
    cutoff = split_cutoff(sessions_dir, test_fraction)
    train, test, starts = [], [], []
    for batch in iter_session_batches(sessions_dir, ("session_id", "start", "items"), 262_144):
        is_test = pa.array(_is_test(batch, cutoff))
        train += batch.column("items").filter(pc.invert(is_test)).to_pylist()
        test += batch.column("items").filter(is_test).to_pylist()
        starts.append(start_seconds(batch.column("start").filter(pc.invert(is_test))))
    return train, test, np.concatenate(starts) if starts else np.zeros(0)


def format_table(report: dict) -> str:
    """The side-by-side table of :func:`evaluate_cold`'s results."""
    lines = [f"{'slice':<6} {'method':<40} {'HR@k':>7} {'queries':>8}"]
    for r in report["results"]:
        lines.append(f"{r['slice']:<6} {r['method']:<40} {r['hr']:>7.4f} {r['queries']:>8}")
    c, s = report["cold_vs_best_attribute"], report["speed"]
    ratios = ", ".join(f"{v}x ({b})" for b, v in c["ratio"].items())
    lines.append(f"cold: pin2vec attributes / popular-same-{c['column']} = {ratios}; "
                 f"training speed with attributes {s['ratio']}x")
    return "\n".join(lines)
