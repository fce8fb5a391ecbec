"""Atomic, pickle-free artifact files and the manifests that mark a directory complete.

Every stage writes its files through these helpers: each file goes to a temporary name in the same
directory and is renamed into place, and ``manifest.json`` is written last, so a reader that finds a
manifest finds every file it names. Readers use :func:`read_manifest` to check the kind and version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recommender.core.errors import ArtifactError

MANIFEST = "manifest.json"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes files owner-only; artifacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` in .npy format atomically (no pickle)."""

    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)

    atomic_write(Path(path), write)


def write_parquet(path: str | Path, table: pa.Table) -> None:
    """Write a pyarrow table to ``path`` as Parquet atomically."""
    atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp))


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text to ``path`` atomically."""
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def file_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes (used to tie an artifact to the one it was built from)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def prepare_output_dir(path: str | Path, overwrite: bool) -> Path:
    """Create ``path`` for a new artifact, refusing to clobber a non-empty directory.

    With ``overwrite`` the old manifest is removed first, so that a run that dies half-way leaves a
    directory no later stage will load, then the rest of the old contents are removed.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ArtifactError(f"output {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise ArtifactError(
                f"output directory {path} is not empty; pass --overwrite to replace it"
            )
        (path / MANIFEST).unlink(missing_ok=True)
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_manifest(directory: str | Path, kind: str, versions: tuple[int, ...] = (1,)) -> dict:
    """Load and check ``directory/manifest.json`` for an artifact of ``kind``.

    Raises :class:`ArtifactError` naming the problem when the directory or manifest is missing,
    unreadable, of another kind, or of a ``format_version`` this code does not read.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{kind} directory {directory} does not exist")
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"{path} is missing: {directory} is not a complete {kind} directory "
            "(the stage that writes it did not finish)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} is not a JSON object")
    found_kind = manifest.get("kind")
    if found_kind is not None and found_kind != kind:
        raise ArtifactError(f"{directory} holds a {found_kind} artifact, expected {kind}")
    version = manifest.get("format_version")
    if version not in versions:
        raise ArtifactError(
            f"{path} has format_version {version!r}; this pin2vec reads {list(versions)}"
        )
    return manifest
