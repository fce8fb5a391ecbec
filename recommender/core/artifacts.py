"""Atomic, pickle-free artifact files and the manifests that mark a directory complete.

Every stage writes its files through these helpers: each file goes to a temporary name in the same
directory and is renamed into place, and ``manifest.json`` is written last, so a reader that finds a
manifest finds every file it names. Readers use :func:`read_manifest` to check the kind and version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recommender.core.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
OUTPUT_MARKER = ".pin2vec-output.json"  # written first into every local output dir: who owns it


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(path.parent, path.name)
    # The writer's pid in the name lets a later run tell a dead writer's leftover from a live one.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
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
    except (OSError, ValueError, RecursionError) as e:
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


def write_manifest(
    directory: str | Path, manifest: dict, files: Iterable[str] | None = None
) -> dict:
    """Write ``manifest.json`` last, recording the size and digest of each file it covers.

    ``files`` defaults to every visible regular file in ``directory`` (not sub-directories, not
    hidden temporaries). Readers check them with
    :func:`recommender.core.integrity.verify_files`, so a truncated, damaged or swapped file is an
    :class:`ArtifactError` naming it, not a wrong answer.
    Returns the manifest as written.
    """
    from recommender.core.integrity import CHECKSUMS, describe_files

    directory = Path(directory)
    if files is None:
        files = sorted(p.name for p in directory.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.name != MANIFEST)
    manifest = {**manifest, CHECKSUMS: describe_files(directory, files)}
    write_json(directory / MANIFEST, manifest)
    (directory / OUTPUT_MARKER).unlink(missing_ok=True)  # complete: the manifest says whose it is
    return manifest


# --- temporaries of interrupted runs -------------------------------------------------------------


def _writer_pid(name: str) -> int | None:
    """The pid in ``.<target>.<pid>.<random>.tmp`` (None for other temporary names)."""
    parts = name[1:-4].rsplit(".", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp(directory: str | Path, target: str | None = None) -> int:
    """Delete ``.*.tmp`` files that a dead writer left in ``directory`` (and its ``checkpoint/``).

    Only names written by :func:`atomic_write` (they carry the writer's pid) whose writer is no
    longer running are removed, so a concurrent writer's temporary is never touched. With
    ``target`` only that file's temporaries are considered. Returns how many were removed.
    """
    directory = Path(directory)
    removed = 0
    for folder in (directory, directory / "checkpoint"):
        if not folder.is_dir():
            continue
        pattern = f".{target}.*.tmp" if target else ".*.tmp"
        for tmp in folder.glob(pattern):
            pid = _writer_pid(tmp.name)
            if pid is not None and not _alive(pid) and tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed += 1
        if target:
            break
    if removed:
        log.info("removed %d temporary file(s) of an interrupted run from %s", removed, directory)
    return removed


# --- the output-directory rule ------------------------------------------------------------------


def _local(path) -> bool:
    return path is not None and "://" not in str(path)


def check_not_input(output: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """Refuse an output that is, contains or lies inside any input (it would be emptied or read).

    Raises
    ------
    ConfigError
        Naming the output and the input it overlaps.
    """
    if not _local(output):
        return
    out = Path(os.path.abspath(output)).resolve()
    for given in inputs:
        if not _local(given) or not str(given):
            continue
        source = Path(os.path.abspath(given)).resolve()
        if out == source:
            how = "is"
        elif out in source.parents:
            how = "contains"
        elif source in out.parents:
            how = "lies inside"
        else:
            continue
        raise ConfigError(
            f"output {output} {how} the input {given}: pin2vec never writes into, or empties, "
            "a directory holding its own input; choose another --output"
        )


def _owner(path: Path) -> tuple[str | None, bool]:
    """(kind of pin2vec artifact in ``path`` or None, whether it is complete)."""
    for name, complete in ((MANIFEST, True), (OUTPUT_MARKER, False)):
        try:
            found = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(found, dict) and isinstance(found.get("kind"), str):
            return found["kind"], complete
    return None, False


def _refuse_precious(path: Path) -> None:
    """Even with --overwrite, never empty the filesystem root, a home directory, or the working
    directory or one of its parents (``--output .`` is a typo more often than a wish)."""
    real = path.resolve()
    cwd = Path.cwd().resolve()
    if real == Path(real.anchor) or real == Path.home().resolve() or real == cwd or (
            real in cwd.parents):
        raise ArtifactError(f"refusing to empty {path}: it is the root, your home or the working "
                            "directory (or holds it); choose a dedicated --output directory")


def _writer(path: Path) -> int | None:
    """The pid of a live process (not this one) named by the directory's output marker."""
    try:
        pid = json.loads((path / OUTPUT_MARKER).read_text(encoding="utf-8")).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or pid == os.getpid():
        return None
    return pid if _alive(pid) else None


def _empty(path: Path) -> None:
    (path / MANIFEST).unlink(missing_ok=True)  # first: a half-emptied dir is never loadable
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def prepare_output_dir(
    path: str | Path,
    overwrite: bool,
    kind: str | None = None,
    inputs: Iterable[str | Path | None] = (),
) -> Path:
    """Create or empty ``path`` for a new artifact of ``kind``: the one output-directory rule.

    * Never when ``path`` is, contains or lies inside any of ``inputs`` (:func:`check_not_input`).
    * An empty or missing directory is used as is.
    * A directory left by an interrupted pin2vec run of the same ``kind`` (its marker, no manifest)
      is emptied -- unless it holds a training checkpoint, which needs ``--resume`` or
      ``--overwrite``.
    * Anything else that is not empty is emptied only with ``overwrite``, and never when its
      manifest says it is a pin2vec artifact of another kind.

    Temporaries of a dead writer are removed in every case. The manifest goes first when a
    directory is emptied, so a run that dies half-way leaves nothing a later stage will load.
    """
    path = Path(path)
    inputs = list(inputs)
    check_not_input(path, inputs)
    if path.exists() and not path.is_dir():
        raise ArtifactError(f"output {path} exists and is not a directory")
    if path.is_dir():
        remove_stale_temp(path)
    if path.is_dir() and any(path.iterdir()):
        found, complete = _owner(path)
        if kind is not None and found is not None and found != kind:
            raise ArtifactError(
                f"output directory {path} holds a pin2vec {found} artifact, not {kind}; "
                "remove it yourself or choose another --output"
            )
        resumable = (path / "checkpoint").is_dir()
        ours_unfinished = kind is not None and found == kind and not complete and not resumable
        writer = _writer(path) if found and not complete else None
        if writer is not None and not overwrite:
            raise ArtifactError(
                f"output directory {path} is being written by another pin2vec process (pid "
                f"{writer}); wait for it or stop it (if that pid is not pin2vec, pass --overwrite)")
        if not (overwrite or ours_unfinished):
            if resumable and found == kind:
                what = ("pass --resume to continue the interrupted run's checkpoint in it, or "
                        "--overwrite to start again")
            else:
                held = f"a complete pin2vec {found}" if found else "files pin2vec did not write"
                what = f"pass --overwrite to replace it (it holds {held}), or choose another output"
            raise ArtifactError(f"output directory {path} is not empty; {what}")
        _refuse_precious(path)
        if ours_unfinished and not overwrite:
            log.warning("emptying %s: an interrupted pin2vec %s run left it unfinished", path, kind)
        _empty(path)
    path.mkdir(parents=True, exist_ok=True)
    if kind is not None:
        write_json(path / OUTPUT_MARKER, {"kind": kind, "pid": os.getpid()})
    return path
