"""Time-based train/test split of a SESSIONS directory.

Offline evaluation must not peek at the future: the test set is the latest sessions by start time
and everything before them trains. Both halves are written as complete SESSIONS directories (same
contract as the pipeline's output), so ``train`` streams the training half like any other input.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recommender.core.artifacts import (
    file_digest,
    prepare_output_dir,
    write_manifest,
)
from recommender.core.errors import ConfigError, Pin2VecError
from recommender.core.sessions import (
    iter_session_batches,
    read_sessions_manifest,
    session_files,
    write_item_counts,
)

log = logging.getLogger(__name__)

COLUMNS = ("session_id", "user_id", "start", "end", "items", "length")


def split_cutoff(sessions_dir: str | Path, test_fraction: float) -> tuple[np.datetime64, str]:
    """The ``(start, session_id)`` of the first test session: sessions at or after it are test.

    Ordering by ``(start, session_id)`` makes the split exact and repeatable even when many sessions
    share a start time.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test fraction must be in (0, 1), got {test_fraction}")
    starts, ids = [], []
    for batch in iter_session_batches(sessions_dir, ("start", "session_id"), 262_144):
        starts.append(batch.column(0).cast(pa.int64()).to_numpy(zero_copy_only=False))
        ids.append(np.asarray(batch.column(1).to_pylist(), dtype=object))
    start = np.concatenate(starts) if starts else np.empty(0, np.int64)
    sid = np.concatenate(ids) if ids else np.empty(0, object)
    n = len(start)
    n_test = int(round(n * test_fraction))
    if n < 2 or n_test == 0 or n_test == n:
        raise Pin2VecError(
            f"{sessions_dir} has {n} sessions: too few to hold out {test_fraction:.0%} by time; "
            "use more data or a larger --test-fraction"
        )
    order = np.lexsort((sid, start))
    first = order[n - n_test]
    return int(start[first]), str(sid[first])


def _is_test(batch: pa.RecordBatch, cutoff: tuple[int, str]) -> np.ndarray:
    start = batch.column("start").cast(pa.int64()).to_numpy(zero_copy_only=False)
    later = start > cutoff[0]
    tie = start == cutoff[0]
    if tie.any():
        sid = np.asarray(batch.column("session_id").to_pylist(), dtype=object)
        later |= tie & (sid >= cutoff[1])
    return later


def time_split(
    sessions_dir: str | Path,
    train_dir: str | Path,
    test_dir: str | Path,
    test_fraction: float = 0.2,
    overwrite: bool = False,
) -> dict:
    """Write the earliest sessions to ``train_dir``, the latest ``test_fraction`` to ``test_dir``.

    Returns a summary ``{"train": n, "test": n, "cutoff": iso time}``. Item counts in each half are
    recomputed from that half's sessions (``engagements`` = occurrences, ``sessions`` = sessions
    that contain the item).
    """
    source = read_sessions_manifest(sessions_dir)
    cutoff = split_cutoff(sessions_dir, test_fraction)
    outputs = {
        "train": prepare_output_dir(train_dir, overwrite, "sessions", [sessions_dir, test_dir]),
        "test": prepare_output_dir(test_dir, overwrite, "sessions", [sessions_dir, train_dir]),
    }
    schema = pq.read_schema(session_files(sessions_dir)[0])
    writers = {
        name: pq.ParquetWriter(path / ".sessions-00000-of-00001.parquet.tmp", schema)
        for name, path in outputs.items()
    }
    counts = {name: (Counter(), Counter()) for name in outputs}
    n = {name: 0 for name in outputs}
    try:
        for batch in iter_session_batches(sessions_dir, COLUMNS, 65_536):
            test = _is_test(batch, cutoff)
            for name, mask in (("train", ~test), ("test", test)):
                if not mask.any():
                    continue
                part = batch.filter(pa.array(mask))
                writers[name].write_batch(part)
                n[name] += part.num_rows
                _count_items(part.column("items"), *counts[name])
    finally:
        for w in writers.values():
            w.close()
    digest = file_digest(Path(sessions_dir) / "manifest.json")
    cutoff_iso = str(np.datetime64(cutoff[0], "us")) + "Z"
    for name, path in outputs.items():
        (path / ".sessions-00000-of-00001.parquet.tmp").replace(
            path / "sessions-00000-of-00001.parquet"
        )
        engagements, in_sessions = counts[name]
        write_item_counts(path, engagements, in_sessions)
        write_manifest(
            path,
            {
                "format_version": 1,
                "kind": "sessions",
                "inputs": [str(sessions_dir)],
                "options": {**source.get("options", {}), "split": name,
                            "test_fraction": test_fraction},
                "split": {"part": name, "cutoff_start": cutoff_iso, "cutoff_session_id": cutoff[1],
                          "source_digest": digest},
                "counts": {
                    "sessions": n[name],
                    "items": len(engagements),
                    "tokens": int(sum(engagements.values())),
                },
            },
        )
    log.info("time split at %s: %d train, %d test sessions", cutoff_iso, n["train"], n["test"])
    return {"train": n["train"], "test": n["test"], "cutoff": cutoff_iso}


def _count_items(items: pa.ListArray, engagements: Counter, in_sessions: Counter) -> None:
    flat = pc.list_flatten(items)
    if len(flat) == 0:
        return
    values = pc.value_counts(flat)
    engagements.update(dict(zip(values.field(0).to_pylist(), values.field(1).to_pylist())))
    # Distinct items per session: unique (session, item) pairs.
    parents = pc.list_parent_indices(items)
    pairs = pa.table({"s": parents, "i": flat}).group_by(["s", "i"]).aggregate([])
    per_item = pc.value_counts(pairs.column("i"))
    in_sessions.update(dict(zip(per_item.field(0).to_pylist(), per_item.field(1).to_pylist())))
