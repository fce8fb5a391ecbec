"""Annoy: a forest of random-projection trees in one memory-mapped file (``items.ann``).

Kept for what it is good at: the file is memory-mapped, so many processes share one page-cache
copy and opening it is instant. Its accuracy knobs: ``trees`` (build time, file size) and
``search_k`` (nodes inspected per query; Annoy's own default is ``trees * n``). On vectors trained
from real logs the defaults reach recall@10 of only 0.7-0.85, so the build calibrates them
(:meth:`AnnoyBackend.escalate`: double ``search_k`` up to 400 per tree, then double the trees).

Annoy's query releases the GIL around the tree search, so a thread pool spreads queries over
cores (the Python list conversions around it do hold the GIL).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from recommender.index.backends.base import Backend

ANNOY_METRIC = {"cosine": "angular", "dot": "dot"}
MAX_SEARCH_K_PER_TREE = 400  # calibration raises search_k up to this many nodes per tree...
MAX_TREE_DOUBLINGS = 2  # ...then doubles the trees at most this many times
ON_DISK_BUILD_ITEMS = 5_000_000  # build the file on disk from this many items up


def auto_trees(n_items: int) -> int:
    """Default number of Annoy trees: ``clip(round(8 * log2(V / 1000) + 10), 10, 64)``.

    10 trees for 1k items, ~37 for 10k, 64 from ~190k items up.
    """
    return int(np.clip(round(8 * math.log2(max(n_items, 1) / 1000) + 10), 10, 64))


def auto_search_k(trees: int, k: int) -> int:
    """Default ``search_k``: ``50 * trees`` nodes inspected per query (at least ``trees*(k+1)``)."""
    return max(50 * trees, trees * (k + 1))


class AnnoyBackend(Backend):
    name = "annoy"
    file_name = "items.ann"

    def __init__(self, items, metric, settings, index=None):
        super().__init__(items, metric, settings)
        self.index = index
        self._start_trees = settings["trees"]

    @classmethod
    def default_settings(cls, n_items: int, dim: int, k: int) -> dict:
        trees = auto_trees(n_items)
        return {"trees": trees, "search_k": auto_search_k(trees, k)}

    @classmethod
    def build(cls, items, metric, settings, path, n_jobs=-1, seed=0, progress=True,
              on_disk_build_items=ON_DISK_BUILD_ITEMS):
        from annoy import AnnoyIndex

        n, dim = items.shape
        index = AnnoyIndex(dim, ANNOY_METRIC[metric])
        index.set_seed(seed)
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        on_disk = n >= on_disk_build_items
        if on_disk:  # nodes go straight to the file instead of RAM; must precede add_item
            index.on_disk_build(str(tmp))
        for i in tqdm(range(n), desc="annoy add", unit="item", disable=not progress):
            index.add_item(i, items[i].tolist())
        index.build(int(settings["trees"]), n_jobs=n_jobs)
        if not on_disk:
            index.save(str(tmp))
        index.unload()
        os.replace(tmp, path)
        return cls.open(path, items, metric, settings)

    @classmethod
    def open(cls, path, items, metric, settings):
        from annoy import AnnoyIndex

        index = AnnoyIndex(items.shape[1], ANNOY_METRIC[metric])
        index.load(str(path))  # mmap
        return cls(items, metric, settings, index)

    def search(self, queries: np.ndarray, k: int, **overrides) -> np.ndarray:
        search_k = int(overrides.get("search_k") or self.settings["search_k"])
        out = np.full((len(queries), k), -1, dtype=np.int64)
        query = self.index.get_nns_by_vector
        for r, q in enumerate(np.asarray(queries, dtype=np.float32).tolist()):
            found = query(q, k, search_k)
            out[r, : len(found)] = found
        return out

    def escalate(self, path, n_jobs=-1, seed=0, progress=True) -> str | None:
        trees, search_k = int(self.settings["trees"]), int(self.settings["search_k"])
        if search_k * 2 <= MAX_SEARCH_K_PER_TREE * trees:
            self.settings["search_k"] = search_k * 2
            return f"search_k {search_k} -> {search_k * 2}"
        if trees * 2 > self._start_trees * 2**MAX_TREE_DOUBLINGS:
            return None
        # More trees at the same search_k: candidates from more, shallower-searched trees.
        self.close()
        self.settings["trees"] = trees * 2
        rebuilt = self.build(self.items, self.metric, self.settings, path, n_jobs, seed, progress)
        self.index = rebuilt.index
        return f"trees {trees} -> {trees * 2} (rebuilt)"

    def count(self) -> int | None:
        return self.index.get_n_items()

    def close(self) -> None:
        if self.index is not None:
            self.index.unload()


BACKEND = AnnoyBackend
