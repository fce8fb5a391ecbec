"""Integrity of artifact files: sizes and fast digests recorded in manifests, checked before use.

Every manifest lists each file it covers under ``checksums`` as ``{"bytes": n, "digest":
"xxh3_128:<hex>"}`` (:func:`recommender.core.artifacts.write_manifest`). :func:`verify_files`
compares sizes first (a ``stat``), then digests (one streamed read). A file that was truncated,
flipped, replaced or swapped with its namesake from another artifact fails here with an
:class:`~recommender.core.errors.ArtifactError` naming it -- before Annoy or numpy can crash on it
or answer from it. ``verify=False`` in the loaders skips the digests (not the sizes) for trusted hot
reloads; ``benchmarks/bench_integrity.py`` measures what the digests cost per GiB.

:func:`check_table` checks a related-item table's values (the digests say the file is the one
written; this says what was written is sane), when it is written and when it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from recommender.core.errors import ArtifactError

try:
    import xxhash
except ImportError:  # pragma: no cover - xxhash is a declared dependency
    xxhash = None

CHECKSUMS = "checksums"
ALGORITHM = "xxh3_128" if xxhash is not None else "blake2b"
_BLOCK = 4 << 20


def _hasher(algorithm: str):
    if algorithm == "xxh3_128" and xxhash is not None:
        return xxhash.xxh3_128()
    if algorithm in ("blake2b", "sha256"):
        return hashlib.new(algorithm)
    return None


def stream_digest(f, algorithm: str = ALGORITHM) -> tuple[int, str]:
    """``(bytes, "<algorithm>:<hex>")`` of a binary stream read to its end in 4 MiB blocks."""
    h = _hasher(algorithm)
    if h is None:
        raise ArtifactError(f"cannot compute a {algorithm} digest here (pip install xxhash)")
    size = 0
    while True:
        block = f.read(_BLOCK)
        if not block:
            break
        size += len(block)
        h.update(block)
    return size, f"{algorithm}:{h.hexdigest()}"


def fast_digest(path: str | Path, algorithm: str = ALGORITHM) -> str:
    """``"<algorithm>:<hex>"`` of a file's bytes, read in 4 MiB blocks into one reused buffer."""
    h = _hasher(algorithm)
    if h is None:
        raise ArtifactError(f"cannot compute a {algorithm} digest here (pip install xxhash)")
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buffer)
            if not n:
                break
            h.update(view[:n])
    return f"{algorithm}:{h.hexdigest()}"


def describe_files(directory: str | Path, names: Iterable[str]) -> dict:
    """``{name: {"bytes": size, "digest": fast_digest}}`` for each file in ``directory``."""
    directory = Path(directory)
    return {name: {"bytes": (directory / name).stat().st_size,
                   "digest": fast_digest(directory / name)} for name in names}


def _entry(directory: Path, manifest: dict, name: str) -> tuple[int, str]:
    where = directory / "manifest.json"
    table = manifest.get(CHECKSUMS)
    if not isinstance(table, dict):
        raise ArtifactError(
            f"{where} records no checksums (written by an older pin2vec or by hand): rebuild the "
            "artifact, or load it with verify=False if you trust it"
        )
    entry = table.get(name)
    if not isinstance(entry, dict):
        raise ArtifactError(f"{where} records no checksum for {name}; rebuild the artifact")
    size, digest = entry.get("bytes"), entry.get("digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ArtifactError(f"{where}: checksums.{name}.bytes is {size!r}, not a byte count")
    if not isinstance(digest, str) or ":" not in digest:
        raise ArtifactError(f"{where}: checksums.{name}.digest is {digest!r}, not a digest")
    return size, digest


def listed_files(manifest: dict) -> list[str]:
    """Names the manifest records checksums for."""
    table = manifest.get(CHECKSUMS)
    return sorted(table) if isinstance(table, dict) else []


def verify_files(directory: str | Path, manifest: dict, names: Iterable[str] | None = None,
                 digests: bool = True) -> None:
    """Check each named file (default: every listed one) against the manifest's checksums.

    Sizes are always compared; digests when ``digests``. Raises :class:`ArtifactError` naming the
    file and what differs.
    """
    directory = Path(directory)
    names = listed_files(manifest) if names is None else list(names)
    if not names:
        _entry(directory, manifest, "")  # raises when there is no checksum table at all
    for name in names:
        size, digest = _entry(directory, manifest, name)
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path} is missing; the artifact is incomplete, rebuild it")
        found = path.stat().st_size
        if found != size:
            raise ArtifactError(
                f"{path} is {found:,} bytes but the manifest says {size:,}: the file is truncated "
                "or was replaced; rebuild the artifact"
            )
        if not digests:
            continue
        algorithm = digest.split(":", 1)[0]
        if _hasher(algorithm) is None:
            raise ArtifactError(f"{path}: unknown digest algorithm {algorithm!r} in the manifest")
        try:
            found_digest = fast_digest(path, algorithm)
        except OSError as e:
            raise ArtifactError(f"cannot read {path}: {e.strerror or e}") from None
        if found_digest != digest:
            raise ArtifactError(
                f"{path} does not match the digest in its manifest: the file is damaged, or "
                "was replaced by a file of another artifact; rebuild the artifact"
            )


_VERIFIED: dict[tuple, bool] = {}


def verify_once(directory: str | Path, manifest_path_stat: os.stat_result, manifest: dict) -> None:
    """:func:`verify_files` once per process for an unchanged directory (readers that re-open a
    SESSIONS dir every epoch pay for the digests once). Keyed on the stats of every file."""
    directory = Path(directory)
    names = listed_files(manifest)
    stats = []
    for name in names:
        try:
            st = (directory / name).stat()
        except OSError:
            stats = None
            break
        stats.append((name, st.st_size, st.st_mtime_ns, st.st_ino))
    key = (str(directory.resolve()), manifest_path_stat.st_mtime_ns, manifest_path_stat.st_ino,
           json.dumps(stats))
    if stats is not None and key in _VERIFIED:
        return
    verify_files(directory, manifest)
    _VERIFIED[key] = True


def check_table(neighbors: np.ndarray, scores: np.ndarray, n_items: int, where: str) -> None:
    """Raise :class:`ArtifactError` unless ``neighbors`` is a sane related-item table.

    Every id is a row in ``[0, n_items)`` or the padding ``-1``, padding only at the end of a row,
    no row lists its own item, and every real neighbour has a finite score.
    """
    nb = np.asarray(neighbors)
    if nb.ndim != 2 or nb.shape[0] != n_items or np.asarray(scores).shape != nb.shape:
        raise ArtifactError(f"{where}: table of shape {nb.shape} for {n_items} items")
    if nb.size == 0:
        return
    pad = nb == -1
    if ((nb < -1) | (nb >= n_items)).any():
        bad = int(np.flatnonzero(((nb < -1) | (nb >= n_items)).any(axis=1))[0])
        raise ArtifactError(f"{where}: row {bad} holds neighbour ids outside [0, {n_items})")
    if (pad[:, :-1] & ~pad[:, 1:]).any():
        bad = int(np.flatnonzero((pad[:, :-1] & ~pad[:, 1:]).any(axis=1))[0])
        raise ArtifactError(f"{where}: row {bad} has padding (-1) before a real neighbour")
    own = nb == np.arange(n_items, dtype=nb.dtype)[:, None]
    if own.any():
        bad = int(np.flatnonzero(own.any(axis=1))[0])
        raise ArtifactError(f"{where}: row {bad} lists its own item as a neighbour")
    with np.errstate(invalid="ignore"):
        if not np.isfinite(np.asarray(scores)[~pad]).all():
            raise ArtifactError(f"{where}: a real neighbour has a NaN or infinite score")
