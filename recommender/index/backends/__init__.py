"""Search backends of the INDEX stage, one file each, behind :class:`~.base.Backend`.

``exact`` (blocked matrix products, no file), ``annoy`` (random-projection forest, memory-mapped
``items.ann``) and ``hnsw`` (hnswlib graph, ``items.hnsw``; optional extra ``pin2vec[hnsw]``).
Callers go through :func:`get_backend`; a new backend is a new module registered in ``BACKENDS``.
"""

from __future__ import annotations

import importlib

from recommender.index.backends.base import Backend

__all__ = ["Backend", "BACKENDS", "get_backend", "available"]

# name -> module defining a Backend subclass named BACKEND
BACKENDS = {
    "exact": "recommender.index.backends.exact",
    "annoy": "recommender.index.backends.annoy",
    "hnsw": "recommender.index.backends.hnsw",
}


def get_backend(name: str) -> type[Backend]:
    """The backend class called ``name`` (raises ConfigError when its library is missing)."""
    from recommender.core.errors import ConfigError

    if name not in BACKENDS:
        raise ConfigError(f"backend must be one of {sorted(BACKENDS)}, got {name!r}")
    cls = importlib.import_module(BACKENDS[name]).BACKEND
    cls.require()
    return cls


def available(name: str) -> bool:
    """Whether backend ``name`` can be used here (its library imports)."""
    try:
        get_backend(name)
    except Exception:
        return False
    return True
