"""Clustered synthetic item vectors and MODEL dirs for the index/lookup benchmarks.

Items belong to clusters of ``per_cluster`` items (like the topics of real sessions): a cluster
centre ~ N(0, I) plus per-item noise ~ N(0, noise^2 I). Lower ``noise`` -> tighter clusters -> an
easier problem for approximate search; at ``noise=1`` in 64 dims the data is close to structureless
Gaussian noise, the hardest case for every ANN method.
"""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pyarrow as pa

from recommender.core.artifacts import save_npy, write_manifest, write_parquet


def clustered(n: int, dim: int, per_cluster: int = 50, noise: float = 0.6, seed: int = 0):
    """float32 [n, dim] vectors in clusters of about ``per_cluster`` items."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(n // per_cluster, 1), dim), dtype=np.float32)
    labels = rng.integers(0, len(centres), n)
    out = centres[labels]
    out += noise * rng.standard_normal((n, dim), dtype=np.float32)
    return out


def write_model(path: Path, vectors: np.ndarray, context: np.ndarray | None = None,
                ids: list[str] | None = None) -> Path:
    """A MODEL dir (docs/architecture.md) of ``vectors``: ids ``item_<row>`` (or ``ids``),
    Zipf-ish counts."""
    n = len(vectors)
    save_npy(path / "vectors.npy", vectors)
    save_npy(path / "context_vectors.npy", vectors if context is None else context)
    counts = (1_000_000 / np.arange(1, n + 1)).astype(np.int64) + 1
    write_parquet(path / "items.parquet", pa.table({
        "item_id": pa.array(ids or [f"item_{i}" for i in range(n)], pa.string()),
        "count": pa.array(counts)}))
    write_manifest(path, {"format_version": 1, "kind": "model", "vocab_size": n,
                          "dim": int(vectors.shape[1]), "config": {"synthetic": True},
                          "seed": 0, "epochs": [], "source_digest": None})
    return path


def peak_rss_mib() -> tuple[float, float]:
    """Peak resident memory (MiB) of this process and of its largest waited-for child."""
    self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return self_kib / 1024, child_kib / 1024
