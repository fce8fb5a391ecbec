"""HNSW through hnswlib (optional: ``pip install pin2vec[hnsw]``): a navigable small-world graph.

Much faster than Annoy at the same recall on trained vectors (see benchmarks/bench_index.py), at
the price of a file that is loaded into memory rather than memory-mapped. Settings: ``M`` (graph
degree; build time, memory), ``ef_construction`` (build effort) and ``ef`` (query effort: the
candidate list kept during a search, at least the number of results asked for). Calibration doubles
``ef`` up to 1024, then doubles ``M`` (rebuild) up to 64.

``dot`` (complementary) scoring is maximum-inner-product search, which a proximity graph does not
do well directly; the standard reduction is used instead: every item gets one extra coordinate
``sqrt(R^2 - |x|^2)`` (R the largest item norm) and queries a 0, so that the Euclidean nearest items
are exactly the largest inner products. hnswlib releases the GIL during queries, and concurrent
``knn_query`` calls are safe once ``ef`` is set; with several build threads the graph (and so an
approximate table) can differ from run to run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from recommender.core.errors import ConfigError
from recommender.index.backends.base import Backend, auto_threads

MAX_EF = 1024
MAX_M = 64
LARGE = 300_000  # items from which the graph is built with less effort
INSTALL_HINT = (
    "the hnsw backend needs hnswlib: pip install 'pin2vec[hnsw]' (or pip install hnswlib), "
    "or choose --backend exact or annoy"
)


def _augment(items: np.ndarray) -> np.ndarray:
    """Items with the extra coordinate that turns max inner product into nearest neighbour."""
    items = np.asarray(items, dtype=np.float32)
    sq = np.einsum("ij,ij->i", items, items)
    extra = np.sqrt(np.maximum(sq.max() - sq, 0.0)).astype(np.float32)
    return np.concatenate([items, extra[:, None]], axis=1)


class HnswBackend(Backend):
    name = "hnsw"
    file_name = "items.hnsw"

    def __init__(self, items, metric, settings, index=None):
        super().__init__(items, metric, settings)
        self.index = index
        if index is not None:
            index.set_ef(int(settings["ef"]))

    @classmethod
    def require(cls) -> None:
        try:
            import hnswlib  # noqa: F401
        except ImportError:
            raise ConfigError(INSTALL_HINT) from None

    @classmethod
    def default_settings(cls, n_items: int, dim: int, k: int) -> dict:
        # ef_construction 100 builds the graph in about half the time of 200 at the same recall
        # once ef is calibrated (100k clustered items: 41 CPU-s, recall@10 1.0 at ef 32); ef starts
        # low because raising it costs the calibration only a re-query of the sample. From 300k
        # items the build dominates the whole table, so it builds at 40 and lets calibration raise
        # ef (1M clustered items, bench_index.py: at 100, build 435 s of 542 s; at 64, 476 s; at
        # 40, build 88 s + table 114 s = 206 s, ef 32 -> 64, recall@10 0.979).
        ef_construction = 100 if n_items < LARGE else 40
        return {"M": 16, "ef_construction": ef_construction, "ef": max(32, k + 1 + cls.overfetch)}

    @classmethod
    def _space(cls, metric: str) -> str:
        return "cosine" if metric == "cosine" else "l2"

    @classmethod
    def build(cls, items, metric, settings, path, n_jobs=-1, seed=0, progress=True):
        import hnswlib

        data = np.asarray(items, dtype=np.float32) if metric == "cosine" else _augment(items)
        n, dim = data.shape
        index = hnswlib.Index(space=cls._space(metric), dim=dim)
        index.init_index(max_elements=n, M=int(settings["M"]),
                         ef_construction=int(settings["ef_construction"]), random_seed=seed)
        index.add_items(data, np.arange(n), num_threads=auto_threads(n_jobs))
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        index.save_index(str(tmp))
        os.replace(tmp, path)
        return cls(items, metric, settings, index)

    @classmethod
    def open(cls, path, items, metric, settings):
        import hnswlib

        dim = items.shape[1] + (0 if metric == "cosine" else 1)
        index = hnswlib.Index(space=cls._space(metric), dim=dim)
        index.load_index(str(path), max_elements=len(items))
        return cls(items, metric, settings, index)

    def search(self, queries: np.ndarray, k: int, **overrides) -> np.ndarray:
        queries = np.asarray(queries, dtype=np.float32)
        if self.metric == "dot":
            queries = np.concatenate([queries, np.zeros((len(queries), 1), np.float32)], axis=1)
        n = len(self.items)
        ask = min(k, n)
        out = np.full((len(queries), k), -1, dtype=np.int64)
        if len(queries):
            try:
                labels, _ = self.index.knn_query(queries, k=ask, num_threads=1)
            except RuntimeError:  # fewer than `ask` found (tiny graphs, ef < ask): exact instead
                from recommender.index.exact import exact_neighbors

                labels, _ = exact_neighbors(queries[:, : self.items.shape[1]], self.items, ask,
                                            self.metric)
            out[:, :ask] = labels
        return out

    def escalate(self, path, n_jobs=-1, seed=0, progress=True) -> str | None:
        ef, m = int(self.settings["ef"]), int(self.settings["M"])
        if ef * 2 <= MAX_EF and ef < len(self.items):
            self.settings["ef"] = ef * 2
            self.index.set_ef(ef * 2)
            return f"ef {ef} -> {ef * 2}"
        if m * 2 > MAX_M:
            return None
        self.settings["M"] = m * 2
        rebuilt = self.build(self.items, self.metric, self.settings, path, n_jobs, seed, progress)
        self.index = rebuilt.index
        return f"M {m} -> {m * 2} (rebuilt)"

    def count(self) -> int | None:
        return self.index.get_current_count()

    def close(self) -> None:
        self.index = None


BACKEND = HnswBackend
