"""Build tiny SESSIONS and MODEL directories straight from Python values.

Tests of a stage use these instead of running the stage before it, so each stage is tested
against the directory contract in docs/architecture.md rather than against another stage's code.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from recommender.core.artifacts import file_digest, save_npy, write_manifest, write_parquet
from recommender.core.sessions import write_item_counts

SESSION_SCHEMA = pa.schema(
    [
        ("session_id", pa.string()),
        ("user_id", pa.string()),
        ("start", pa.timestamp("us", tz="UTC")),
        ("end", pa.timestamp("us", tz="UTC")),
        ("items", pa.list_(pa.string())),
        ("length", pa.int32()),
    ]
)


def write_sessions_dir(
    path: str | Path,
    sessions: list[list[str]],
    users: list[str] | None = None,
    starts: list[dt.datetime] | None = None,
    shards: int = 1,
) -> Path:
    """A complete SESSIONS dir of ``sessions`` (one minute apart unless ``starts`` is given)."""
    path = Path(path)
    n = len(sessions)
    users = users or [f"u{i}" for i in range(n)]
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    starts = starts or [t0 + dt.timedelta(minutes=i) for i in range(n)]
    ends = [s + dt.timedelta(seconds=max(len(x) - 1, 0)) for s, x in zip(starts, sessions)]
    table = pa.table(
        {
            "session_id": [f"s{i:06d}" for i in range(n)],
            "user_id": users,
            "start": starts,
            "end": ends,
            "items": sessions,
            "length": [len(s) for s in sessions],
        },
        schema=SESSION_SCHEMA,
    )
    bounds = np.linspace(0, n, shards + 1).astype(int)
    for i in range(shards):
        part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
        write_parquet(path / f"sessions-{i:05d}-of-{shards:05d}.parquet", part)
    engagements = Counter(item for s in sessions for item in s)
    in_sessions = Counter(item for s in sessions for item in set(s))
    write_item_counts(path, engagements, in_sessions)
    tokens = sum(len(s) for s in sessions)
    write_manifest(
        path,
        {
            "format_version": 1,
            "kind": "sessions",
            "inputs": ["<tests.factories>"],
            "options": {},
            "counts": {
                "read": tokens,
                "valid": tokens,
                "rejected": {},
                "filtered": {},
                "sessions": n,
                "items": len(engagements),
                "tokens": tokens,
            },
        },
    )
    return path


def write_model_dir(
    path: str | Path,
    item_ids: list[str],
    vectors: np.ndarray,
    context_vectors: np.ndarray | None = None,
    counts: list[int] | None = None,
) -> Path:
    """A complete MODEL dir of the given matrices (context vectors default to the inputs)."""
    path = Path(path)
    vectors = np.asarray(vectors, dtype=np.float32)
    context_vectors = vectors if context_vectors is None else context_vectors
    counts = counts or [1] * len(item_ids)
    save_npy(path / "vectors.npy", vectors)
    save_npy(path / "context_vectors.npy", np.asarray(context_vectors, dtype=np.float32))
    write_parquet(
        path / "items.parquet",
        pa.table(
            {"item_id": pa.array(item_ids, pa.string()), "count": pa.array(counts, pa.int64())}
        ),
    )
    write_manifest(
        path,
        {
            "format_version": 1,
            "kind": "model",
            "vocab_size": len(item_ids),
            "dim": int(vectors.shape[1]),
            "config": {"architecture": "given"},
            "seed": 0,
            "epochs": [],
            "source_digest": None,
        },
    )
    return path


def digest(path: str | Path) -> str:
    return file_digest(Path(path) / "manifest.json")
