"""numpy arrays as ``.npy`` files on any Beam filesystem (the shards of the table jobs)."""

from __future__ import annotations

import io

import numpy as np

from pipeline._beam import FileSystems


def write_npy(path: str, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` (local or ``gs://...``); no pickle."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    with FileSystems.create(path) as f:
        f.write(buf.getvalue())


def read_npy(path: str) -> np.ndarray:
    """The array written by :func:`write_npy` at ``path``; never unpickles."""
    with FileSystems.open(path) as f:
        return np.load(io.BytesIO(f.read()), allow_pickle=False)
