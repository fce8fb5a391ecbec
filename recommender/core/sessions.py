"""Read a SESSIONS directory (the pipeline's output) without loading it all into memory.

See ``docs/architecture.md``: ``sessions-*.parquet`` (``session_id``, ``user_id``, ``start``,
``end``, ``items`` list<string>, ``length``), ``items.parquet`` and ``manifest.json``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recommender.core.artifacts import MANIFEST, read_manifest, write_parquet
from recommender.core.errors import ArtifactError
from recommender.core.integrity import listed_files, verify_once

SESSIONS_KIND = "sessions"


def read_sessions_manifest(directory: str | Path, verify: bool = True) -> dict:
    """The checked ``manifest.json`` of a SESSIONS directory.

    With ``verify`` (the default) every file the manifest lists is checked against its recorded
    size and digest, once per process while the files are unchanged (see
    :func:`recommender.core.integrity.verify_once`).
    """
    manifest = read_manifest(directory, SESSIONS_KIND)
    if verify:
        verify_once(directory, (Path(directory) / MANIFEST).stat(), manifest)
    return manifest


def session_files(directory: str | Path) -> list[Path]:
    """The ``sessions-*.parquet`` shards of a complete SESSIONS directory, in name order."""
    manifest = read_sessions_manifest(directory)
    files = sorted(Path(directory).glob("sessions-*.parquet"))
    listed = {n for n in listed_files(manifest) if n.startswith("sessions-")}
    extra = [p.name for p in files if p.name not in listed]
    if listed and extra:
        raise ArtifactError(f"{directory} holds {extra[0]}, which its manifest does not list: "
                            "a shard from another run? Re-run pin2vec sessionize")
    for path in files:  # a footer read each: a shard of another shape is an error, not a crash
        try:
            items = pq.read_schema(path).field("items").type
        except (OSError, KeyError, pa.ArrowException) as e:
            raise ArtifactError(f"cannot read the schema of {path}: {e}") from None
        listy = pa.types.is_list(items) or pa.types.is_large_list(items)
        if not (listy and (pa.types.is_string(items.value_type)
                           or pa.types.is_large_string(items.value_type))):
            raise ArtifactError(f"{path}: items is {items}, expected list<string>")
    if not files:
        raise ArtifactError(f"{directory} has a manifest but no sessions-*.parquet files")
    return files


def iter_session_batches(
    directory: str | Path,
    columns: Sequence[str] = ("items",),
    batch_size: int = 16_384,
) -> Iterator[pa.RecordBatch]:
    """Stream the sessions as record batches of at most ``batch_size`` rows, shard by shard."""
    for path in session_files(directory):
        try:
            pf = pq.ParquetFile(path)
            yield from pf.iter_batches(batch_size=batch_size, columns=list(columns))
        except (OSError, pa.ArrowException) as e:
            raise ArtifactError(f"cannot read {path}: {e}") from None


def start_seconds(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A sessions ``start`` column as float64 seconds since the epoch."""
    micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return micros.to_numpy(zero_copy_only=False) / 1e6


def iter_sessions(directory: str | Path, batch_size: int = 16_384) -> Iterator[list[str]]:
    """Each session's items as a list of strings (convenient, not fast: small data and tests)."""
    for batch in iter_session_batches(directory, ("items",), batch_size):
        yield from batch.column(0).to_pylist()


def read_sessions_table(
    directory: str | Path, columns: Sequence[str] = ("session_id", "user_id", "start", "items")
) -> pa.Table:
    """All sessions as one table (for evaluation-sized data; training streams instead)."""
    try:
        tables = [pq.read_table(path, columns=list(columns)) for path in session_files(directory)]
    except (OSError, pa.ArrowException) as e:
        raise ArtifactError(f"cannot read the sessions in {directory}: {e}") from None
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def read_item_counts(directory: str | Path) -> pa.Table:
    """``items.parquet``: ``item_id``, ``engagements``, ``sessions`` after all filters."""
    read_sessions_manifest(directory)
    path = Path(directory) / "items.parquet"
    if not path.is_file():
        raise ArtifactError(f"{path} is missing")
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise ArtifactError(f"cannot read {path}: {e}") from None


def write_item_counts(
    directory: str | Path, engagements: Mapping[str, int], in_sessions: Mapping[str, int]
) -> None:
    """Write ``items.parquet`` (sorted by ``item_id``) from per-item engagement/session counts."""
    ids = sorted(engagements)
    write_parquet(
        Path(directory) / "items.parquet",
        pa.table(
            {
                "item_id": pa.array(ids, pa.string()),
                "engagements": pa.array([engagements[i] for i in ids], pa.int64()),
                "sessions": pa.array([in_sessions.get(i, 0) for i in ids], pa.int64()),
            }
        ),
    )
