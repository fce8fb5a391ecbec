"""Synthetic engagement logs whose *shape* matches real public logs, for honest benchmarks.

Planted-topic corpora are too kind: every session sits in one topic, so any method looks good.
These generators mimic two logs the team measured instead (targets in ``DENSE_TARGETS`` and
``SPARSE_TARGETS``):

* :func:`dense_log` - a MovieLens-100k-like rating log: ~950 users with long lognormal histories,
  a heavy popularity head, ratings in bursts sharing one second, items released over seven months.
  A user mixes a few latent tastes, often steps from the previous item to one of its fixed
  within-taste successors (so order carries signal: b tends to follow a), picks popular items
  of their tastes, and rates plenty of popular items unrelated to taste.
* :func:`sparse_log` - a small e-commerce click log: short sessions (the sessions are the keys),
  ~6,700 products that launch over time and fade, so most test-time queries are unseen in
  training; sessions browse within a category, brand and price band.

Both come with a catalogue whose attributes carry the planted signal (for cold-start work).
``python benchmarks/reallike.py [--output DIR] [--seed S] [--scale X]`` writes both logs and prints
their shape statistics and the calibration HR@10 table (see :mod:`refscore`) next to the targets.
"""

from __future__ import annotations

import argparse
import bisect
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from refscore import (
    cooccurrence,
    ease,
    embedding,
    encode,
    gensim_vectors,
    holdout_last,
    hr_at_k,
    next_item_pairs,
    popular,
    popularity,
    sequential_rules,
    time_split_sessions,
    top_k,
)

DAY = 86_400
DENSE_START = 874_724_710  # 1997-09-20, the first second of MovieLens-100k
SPARSE_START = 1_451_606_400  # 2016-01-01
GENRES = ("Drama Comedy Action Thriller Romance Adventure Children Crime Sci-Fi Horror War "
          "Mystery Musical Documentary Animation Western Film-Noir Fantasy").split()
WORDS = ("night river house city love war star dead last dark blue little man woman day king "
         "road summer ghost heart game fire wild lost secret golden iron silent").split()


@dataclass(frozen=True)
class LogData:
    """One synthetic log: events (user_id, item_id, timestamp[, session_id]) and a catalogue."""

    name: str
    events: pa.Table
    catalog: pa.Table


def _lengths(rng, n: int, total: int, median: float, sigma: float, lo: int, hi: int):
    """``n`` shifted-lognormal lengths in [lo, hi] summing to about ``total``."""
    raw = lo + np.exp(np.log(median - lo) + sigma * rng.standard_normal(n))
    raw *= total / raw.sum()
    return np.clip(np.round(raw), lo, hi).astype(np.int64)


def _ids(prefix: str, idx: np.ndarray) -> pa.Array:
    return pa.array([f"{prefix}{i}" for i in idx], pa.string())


def _burst_times(rng, n: int, t0: float, t_end: float) -> np.ndarray:
    """``n`` non-decreasing epoch seconds: a big first visit, a few later ones, ratings in bursts.

    Bursts are groups of ratings submitted in the same second (60% single, the rest 2 + Poisson
    2.5), which is why about three quarters of events share their second with another.
    """
    sizes = np.where(rng.random(n) < 0.6, 1, 2 + rng.poisson(2.5, n))
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
    sizes[-1] -= sizes.sum() - n
    start = np.cumsum(1 + rng.exponential(40.0, len(sizes)))  # seconds between bursts
    first = max(1, int(rng.uniform(0.5, 0.9) * len(sizes)))  # bursts of the first visit
    later = min(rng.poisson(1.5), len(sizes) - first)
    cuts = np.sort(first + rng.choice(len(sizes) - first, later, replace=False))
    for c, v in zip(cuts, np.sort(rng.uniform(t0, t_end, later))):
        start[c:] += max(v - (t0 + start[c]), 0.0)  # a later visit jumps ahead to its own day
    return np.repeat(t0 + start, sizes).astype(np.int64)


def dense_log(seed: int = 0, scale: float = 1.0, n_tastes: int = 20, noise: float = 0.3,
              chain: float = 0.5, forward: float = 0.95, pop_sigma: float = 2.0,
              span_days: float = 215.0, user_tastes: int = 4, taste_pop: float = 1.5,
              floor: float = 0.03, noise_pop: float = 1.0, taste_floor: float = 0.002,
              chain_spread: float = 0.95, obscure: float = 0.5, successors: int = 60,
              succ_pop: float = 0.3, tie_shuffle: float = 0.15) -> LogData:
    """A MovieLens-100k-shaped rating log (``scale`` multiplies users, items and events).

    Parameters
    ----------
    n_tastes : latent tastes (genre clusters); each user mixes ``user_tastes`` of them, plus
        ``taste_floor`` of every other taste.
    noise : share of events drawn from global (time-drifting) popularity ** ``noise_pop``,
        unrelated to taste.
    chain : share of events that step from the previous item to one of its taste's fixed
        ``successors`` (an item's successor list is drawn within its taste with probability
        ~ popularity ** ``succ_pop``); the j-th successor is taken with probability
        ~ ``chain_spread`` ** j, so order carries signal but no single pair dominates.
        ``successors=0`` walks a taste's item chain instead (``forward`` of the steps ahead).
    obscure : an item reached by a chain step is kept with probability
        weight / (weight + obscure * median weight); small values let rare items live in
        distinct (chain) contexts, which is what keeps embeddings of the tail apart.
    taste_pop : taste-driven picks favour popular items within the taste (weight ** taste_pop).
    tie_shuffle : share of a user's same-second bursts whose order is shuffled (a real log
        stores ratings submitted together in arbitrary order, which blurs the direction).
    floor : every item's popularity weight gets ``floor`` * median weight added, so (almost)
        every item has an event, as in the real log.

    The defaults were calibrated against ``DENSE_TARGETS`` (gensim random-pair cosine ~0.6 and
    W.C above cosine, as on the real log; ``benchmarks/reallike.py`` prints the table).
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = round(943 * scale), round(1682 * scale)
    n_events = round(100_000 * scale)
    span = span_days * DAY
    taste_size = rng.dirichlet(np.full(n_tastes, 2.0))
    taste = rng.choice(n_tastes, n_items, p=taste_size)
    weight = np.exp(pop_sigma * rng.standard_normal(n_items))
    weight += floor * np.median(weight)
    released = np.where(rng.random(n_items) < 0.8, -np.inf, rng.uniform(0, span, n_items))
    members = [np.flatnonzero(taste == k) for k in range(n_tastes)]
    chains = [rng.permutation(m) for m in members]  # the forward order within a taste
    pos = np.empty(n_items, np.int64)
    for ch in chains:
        pos[ch] = np.arange(len(ch))
    succ = None
    if successors:
        succ = np.empty((n_items, successors), np.int64)
        for m in members:
            p = weight[m] ** succ_pop
            succ[m] = rng.choice(m, (len(m), successors), p=p / p.sum())

    # Availability and popularity drift, per day: cumulative weights overall and per taste.
    days = np.arange(int(span_days) + 2) * DAY
    age = days[:, None] - released[None, :]
    w = np.where(age >= 0, weight * (1 + 4 * np.exp(-np.maximum(age, 0) / (30 * DAY))), 0.0)
    cum_all = np.cumsum(w ** noise_pop, axis=1)
    wt = w ** taste_pop
    cum_taste = [np.cumsum(wt[:, m], axis=1) for m in members]

    py = random.Random(int(rng.integers(2**63)))  # scalar draws: far cheaper than numpy's
    log_stay = np.log(chain_spread)
    w_mid = float(np.median(weight))
    lengths = _lengths(rng, n_users, n_events, 65, 1.14, 20, round(737 * max(scale, 1) ** 0.2))
    users, items, times = [], [], []
    for u, n in enumerate(lengths):
        t = _burst_times(rng, int(n), rng.uniform(0, span * 0.85), span)
        day = np.minimum(t // DAY, len(days) - 1).astype(np.int64)
        mix = np.full(n_tastes, taste_floor)
        mix[rng.choice(n_tastes, user_tastes, replace=False)] += rng.dirichlet(np.ones(user_tastes))
        mix_cum = list(np.cumsum(mix / mix.sum()))
        seen: set[int] = set()
        prev = -1
        first = len(items)
        for i in range(len(t)):
            d = day[i]
            pick = -1
            for _ in range(20):
                r = py.random()
                if r < chain and prev >= 0:
                    step = 1 + int(np.log(1.0 - py.random()) / log_stay)
                    if succ is not None:
                        cand = int(succ[prev, (step - 1) % successors])
                    else:
                        ch = chains[taste[prev]]
                        step = step if py.random() < forward else -step
                        cand = int(ch[(pos[prev] + step) % len(ch)])
                    if py.random() * (weight[cand] + obscure * w_mid) > weight[cand]:
                        continue  # obscure items are mostly passed over, as on real sites
                elif r < chain + noise:
                    cand = int(np.searchsorted(cum_all[d], py.random() * cum_all[d, -1]))
                else:
                    k = min(bisect.bisect(mix_cum, py.random()), n_tastes - 1)
                    cw = cum_taste[k][d]
                    if len(cw) == 0 or cw[-1] <= 0:
                        continue
                    cand = int(members[k][np.searchsorted(cw, py.random() * cw[-1])])
                if cand not in seen and released[cand] <= t[i]:
                    pick = cand
                    break
            if pick < 0:
                continue
            seen.add(pick)
            prev = pick
            users.append(u)
            items.append(pick)
            times.append(t[i])
        if tie_shuffle > 0 and len(times) - first > 1:
            ut = np.asarray(times[first:])
            cuts = [0, *(np.flatnonzero(ut[1:] != ut[:-1]) + 1), len(ut)]
            for a, b in zip(cuts[:-1], cuts[1:]):
                if b - a > 1 and py.random() < tie_shuffle:
                    part = items[first + a:first + b]
                    py.shuffle(part)
                    items[first + a:first + b] = part
    order = np.argsort(np.asarray(times), kind="stable")
    events = pa.table({
        "user_id": _ids("u", np.asarray(users)[order]),
        "item_id": _ids("m", np.asarray(items)[order]),
        "timestamp": pa.array(DENSE_START + np.asarray(times, np.int64)[order], pa.int64())})
    return LogData("dense", events, _dense_catalog(rng, taste, released, n_tastes))


def _dense_catalog(rng, taste, released, n_tastes) -> pa.Table:
    """Titles, multi-valued genres and year, all leaning on each item's latent taste."""
    n = len(taste)
    genre_p = np.linspace(3, 0.3, len(GENRES))
    genre_p /= genre_p.sum()
    taste_genres = [rng.choice(len(GENRES), 1 + rng.integers(0, 3), replace=False, p=genre_p)
                    for _ in range(n_tastes)]
    taste_era = rng.choice([1995, 1993, 1985, 1970, 1955], n_tastes, p=[.4, .25, .15, .12, .08])
    taste_words = [rng.choice(len(WORDS), 4, replace=False) for _ in range(n_tastes)]
    new = np.isfinite(released)
    year = np.where(new, 1997 + (released > 100 * DAY),
                    np.clip(np.round(taste_era[taste] + 6 * rng.standard_normal(n)), 1922, 1996))
    genres, titles = [], []
    for i, k in enumerate(taste):
        g = [x for x in taste_genres[k] if rng.random() < 0.85] or [taste_genres[k][0]]
        if rng.random() < 0.3:
            g.append(rng.integers(len(GENRES)))
        genres.append("|".join(dict.fromkeys(GENRES[x] for x in g)))
        w1 = WORDS[rng.choice(taste_words[k])] if rng.random() < 0.6 else rng.choice(WORDS)
        titles.append(f"The {w1.title()} {rng.choice(WORDS).title()} ({int(year[i])})")
    return pa.table({"item_id": _ids("m", np.arange(n)), "title": pa.array(titles),
                     "genres": pa.array(genres), "year": pa.array(year.astype(np.int64))})


def sparse_log(seed: int = 0, scale: float = 1.0, noise: float = 0.05, span_days: float = 120.0,
               lifetime_days: float = 12.0, pop_sigma: float = 0.6) -> LogData:
    """An e-commerce click-session log (``scale`` multiplies sessions, items and events).

    Parameters
    ----------
    noise : share of clicks after the first drawn from everything on sale, unrelated to the
        session's category, brand and price band.
    lifetime_days : a product's attention decays as exp(-age / lifetime) after its launch, so
        clicks cluster shortly after launch and test-time queries are mostly new products.
    """
    rng = np.random.default_rng(seed)
    n_items, n_events = round(10_000 * scale), round(12_000 * scale)
    span, life = span_days * DAY, lifetime_days * DAY
    cat = _sparse_catalog(rng, n_items, scale)
    leaf, brand, top = cat["leaf"], cat["brand"], cat["top"]
    log_price = np.log(cat["price"])
    launch = np.where(rng.random(n_items) < 0.3, -rng.uniform(0, 30 * DAY, n_items),
                      rng.uniform(0, span, n_items))
    weight = np.exp(pop_sigma * rng.standard_normal(n_items))
    by_leaf = [np.flatnonzero(leaf == k) for k in range(leaf.max() + 1)]
    by_brand = [np.flatnonzero(brand == k) for k in range(brand.max() + 1)]
    by_top = [np.flatnonzero(top == k) for k in range(top.max() + 1)]

    lengths = np.where(rng.random(n_events) < 0.12, 1, 2 + rng.poisson(1.85, n_events))
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n_events) + 1]
    starts = np.sort(rng.uniform(0, span, len(lengths)))
    sess, items, times = [], [], []
    for s, (n, t) in enumerate(zip(lengths, starts)):
        age = t - launch
        act = np.where(age >= 0, weight * np.exp(-np.maximum(age, 0) / life), 0.0)
        first = _draw(rng, np.arange(n_items), act)
        picked = [first]
        for _ in range(n - 1):
            r = rng.random()
            if r < noise:
                pool = np.arange(n_items)
            elif r < noise + 0.1:
                pool = by_brand[brand[first]]
            elif r < noise + 0.15:
                pool = by_top[top[first]]
            else:
                pool = by_leaf[leaf[first]]
            w = act[pool] * np.exp(-np.abs(log_price[pool] - log_price[first]) / 0.2)
            w[np.isin(pool, picked)] = 0.0
            nxt = _draw(rng, pool, w)
            if nxt >= 0:
                picked.append(nxt)
        clicks = t + np.cumsum(rng.exponential(60.0, len(picked))).astype(np.int64)
        sess += [s] * len(picked)
        items += picked
        times += list(clicks)
    sess_ids = _ids("s", np.asarray(sess))
    events = pa.table({
        "session_id": sess_ids, "user_id": _ids("v", np.asarray(sess)),  # anonymous visitors
        "item_id": _ids("p", np.asarray(items)),
        "timestamp": pa.array(SPARSE_START + np.asarray(times, np.int64), pa.int64())})
    events = events.sort_by([("timestamp", "ascending")])
    catalog = pa.table({"item_id": _ids("p", np.arange(n_items)), "title": cat["title"],
                        "category": cat["category"], "brand": cat["brand_name"],
                        "price": pa.array(cat["price"]), "tags": cat["tags"]})
    return LogData("sparse", events, catalog)


def _draw(rng, pool: np.ndarray, w: np.ndarray) -> int:
    """One item of ``pool`` with probability proportional to ``w``; -1 if all weights are 0."""
    cw = np.cumsum(w)
    if len(cw) == 0 or cw[-1] <= 0:
        return -1
    return int(pool[min(np.searchsorted(cw, rng.random() * cw[-1], side="right"), len(cw) - 1)])


def _sparse_catalog(rng, n: int, scale: float) -> dict:
    """Category tree (top/leaf), brands living in a few top categories, price bands, tags."""
    n_top = 12
    n_leaf_per_top = 1 + rng.poisson(15 * scale ** 0.5, n_top)
    leaf_top = np.repeat(np.arange(n_top), n_leaf_per_top)
    leaf = rng.choice(len(leaf_top), n, p=rng.dirichlet(np.full(len(leaf_top), 0.8)))
    top = leaf_top[leaf]
    n_brands = round(400 * scale ** 0.5)
    brand_top = rng.integers(0, n_top, n_brands)
    brand = rng.integers(0, n_brands, n)
    home = [np.flatnonzero(brand_top == k) for k in range(n_top)]
    for i in np.flatnonzero(rng.random(n) < 0.85):  # most products are from a brand of their field
        if len(home[top[i]]):
            brand[i] = rng.choice(home[top[i]])
    leaf_price = np.exp(3.3 + 1.0 * rng.standard_normal(len(leaf_top)))
    price = np.round(leaf_price[leaf] * np.exp(0.5 * rng.standard_normal(n))) + 0.99
    leaf_tags = [rng.choice(150, 4, replace=False) for _ in range(len(leaf_top))]
    tags = []
    for k in leaf:
        own = list(rng.choice(leaf_tags[k], 2 + rng.integers(0, 2), replace=False))
        if rng.random() < 0.3:
            own.append(rng.integers(150))
        tags.append("|".join(dict.fromkeys(f"t{x}" for x in own)))
    leaf_in_top = leaf - np.searchsorted(leaf_top, top)
    category = [f"c{a}/c{a}.{b}" for a, b in zip(top, leaf_in_top)]
    brand_name = [f"b{x}" for x in brand]
    title = [f"{bn} {WORDS[(k * 7) % len(WORDS)]} {WORDS[rng.integers(len(WORDS))]}"
             for bn, k in zip(brand_name, leaf)]
    return {"leaf": leaf, "top": top, "brand": brand, "price": price, "category": category,
            "brand_name": brand_name, "tags": tags, "title": title}


def write_log(data: LogData, folder: str | Path) -> Path:
    """Write ``events.parquet`` and ``catalog.csv`` under ``folder`` (created); return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(data.events, folder / "events.parquet")
    pcsv.write_csv(data.catalog, folder / "catalog.csv")
    return folder


def _grouped(events: pa.Table, key: str):
    """Item sequences per ``key`` value (time-ordered, ties in row order) and their start times."""
    rows = events.append_column("_row", pa.array(np.arange(len(events))))
    rows = rows.sort_by([(key, "ascending"), ("timestamp", "ascending"), ("_row", "ascending")])
    keys = pc.dictionary_encode(rows.column(key)).combine_chunks().indices.to_numpy()
    items = np.asarray(rows.column("item_id").to_pylist(), dtype=object)
    times = rows.column("timestamp").to_numpy()
    cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    bounds = np.concatenate([[0], cuts])
    return [list(s) for s in np.split(items, cuts)], times[bounds]


def user_sequences(events: pa.Table, key: str = "user_id") -> list[list[str]]:
    """Each ``key`` value's items in time order (stable: equal times keep their row order)."""
    return _grouped(events, key)[0]


def session_sequences(events: pa.Table, key: str = "session_id"):
    """(sequences, start times) per session, for :func:`refscore.time_split_sessions`."""
    return _grouped(events, key)


# Shape statistics and calibration HR@10 the team measured on the real logs.
DENSE_TARGETS = {"events": 100_000, "users": 943, "items": 1682, "history median": 65,
                 "history max": 737, "top 5% items share": 0.26, "top 20% items share": 0.65,
                 "items with <=5 events": 0.23, "events sharing their second": 0.75,
                 "span days": 215,
                 "most-popular": 0.045, "co-occurrence (+-5)": 0.125,
                 "sequential rules (10)": 0.149, "gensim cosine": 0.098, "gensim W.C": 0.117,
                 "gensim random-pair cosine": 0.62}
SPARSE_TARGETS = {"events": 12_000, "items": 6700, "session mean length": 3.5,
                  "sessions of 2-5 clicks": None, "items seen <=2 times": None,
                  "test queries unseen in train": 0.69,
                  "most-popular": 0.002, "co-occurrence (+-5)": 0.042, "EASE (best lambda)": 0.048}


def shape_stats(data: LogData) -> dict[str, float]:
    """The shape statistics of ``DENSE_TARGETS``/``SPARSE_TARGETS`` measured on ``data``."""
    ev = data.events
    counts = np.sort(pc.value_counts(ev.column("item_id")).field("counts").to_numpy())[::-1]
    t = ev.column("timestamp").to_numpy()
    out = {"events": len(ev), "items": len(counts), "span days": (t.max() - t.min()) / DAY}
    if data.name == "dense":
        lengths = pc.value_counts(ev.column("user_id")).field("counts").to_numpy()
        head = lambda f: counts[: max(1, round(f * len(counts)))].sum() / counts.sum()  # noqa: E731
        same = pa.table({"u": ev.column("user_id"), "t": ev.column("timestamp")}) \
            .group_by(["u", "t"]).aggregate([("t", "count")]).column("t_count").to_numpy()
        out.update({"users": len(lengths), "history median": float(np.median(lengths)),
                    "history max": int(lengths.max()), "top 5% items share": head(0.05),
                    "top 20% items share": head(0.2), "items with <=5 events": np.mean(counts <= 5),
                    "events sharing their second": same[same > 1].sum() / len(ev)})
    else:
        lengths = pc.value_counts(ev.column("session_id")).field("counts").to_numpy()
        seqs, starts = session_sequences(ev)
        train, test = time_split_sessions(seqs, starts, 0.2)
        seen = {x for s in train for x in s}
        queries = [x for s in test for x in s[:-1]]
        out.update({"sessions": len(lengths), "session mean length": lengths.mean(),
                    "sessions of 2-5 clicks": np.mean((lengths >= 2) & (lengths <= 5)),
                    "items seen <=2 times": np.mean(counts <= 2),
                    "test queries unseen in train": np.mean([q not in seen for q in queries])})
    return out


def calibrate(data: LogData, with_gensim: bool = True) -> dict[str, float]:
    """Next-item HR@10 of the reference scorers under the team's protocol (see :mod:`refscore`)."""
    if data.name == "dense":
        train, test = holdout_last(user_sequences(data.events), 5)
    else:
        train, test = time_split_sessions(*session_sequences(data.events), 0.2)
    (train, test), vocab = encode(train, test)
    n = len(vocab)
    q, target = next_item_pairs(test)
    pop = popularity(train, n)
    hr = lambda scorer: hr_at_k(top_k(scorer, q, pop, 10), target)  # noqa: E731
    out = {"most-popular": hr(popular(train, n)),
           "co-occurrence (+-5)": hr(cooccurrence(train, n, 5)),
           "sequential rules (10)": hr(sequential_rules(train, n, 10))}
    if data.name == "sparse":
        for lam in (10, 50, 100, 500):
            out[f"EASE (lambda {lam})"] = hr(ease(train, n, lam))
        out["EASE (best lambda)"] = max(v for k, v in out.items() if k.startswith("EASE"))
    if with_gensim:
        try:
            w, c = gensim_vectors(train, n)
        except ImportError:
            return out
        out["gensim cosine"] = hr(embedding(w))
        out["gensim W.C"] = hr(embedding(w, c, cosine=False))
        seen = np.flatnonzero(np.linalg.norm(w, axis=1) > 0)
        rng = np.random.default_rng(0)
        a, b = rng.choice(seen, 20_000), rng.choice(seen, 20_000)
        wn = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        out["gensim random-pair cosine"] = float(np.mean(np.sum(wn[a] * wn[b], axis=1)))
    return out


def _table(title: str, ours: dict, targets: dict) -> str:
    lines = [f"{title:<32} {'measured':>10} {'target':>10}"]
    for k in dict.fromkeys([*targets, *ours]):
        m, t = ours.get(k), targets.get(k)
        fmt = lambda v: "-" if v is None else f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"  # noqa
        lines.append(f"  {k:<30} {fmt(m):>10} {fmt(t):>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=None,
                        help="write OUTPUT/dense and OUTPUT/sparse (events.parquet, catalog.csv)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--no-calibration", action="store_true", help="shape statistics only")
    parser.add_argument("--no-gensim", action="store_true", help="skip the gensim rows")
    args = parser.parse_args(argv)
    for make, targets in ((dense_log, DENSE_TARGETS), (sparse_log, SPARSE_TARGETS)):
        start = time.perf_counter()
        data = make(seed=args.seed, scale=args.scale)
        took = time.perf_counter() - start
        if args.output is not None:
            write_log(data, args.output / data.name)
        stats = shape_stats(data)
        print(_table(f"{data.name} log (made in {took:.1f}s)", stats,
                     {k: v for k, v in targets.items() if k in stats}))
        if not args.no_calibration:
            start = time.perf_counter()
            hr = calibrate(data, with_gensim=not args.no_gensim)
            took = time.perf_counter() - start
            print(_table(f"{data.name} HR@10 ({took:.0f}s)", hr,
                         {k: v for k, v in targets.items() if k not in stats}))
        print()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
