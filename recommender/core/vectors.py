"""Small vector helpers shared by the stages (training diagnostics, indexing, lookups)."""

from __future__ import annotations

import numpy as np


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` with every vector (last axis) scaled to unit length; zero vectors stay zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))
