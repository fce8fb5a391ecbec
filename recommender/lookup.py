"""``RelatedItems``: related-item lookups over an INDEX dir, and ``pin2vec related``.

Build once, read many: :meth:`RelatedItems.load` memory-maps the precomputed table
(``neighbors.npy``/``scores.npy``) and the Annoy file, so opening an index in many processes costs
one page-cache copy of the data plus each process's id -> row dictionary. ``related()`` is a
dictionary lookup, one slice of each memory-mapped row and a list comprehension -- no search.
``related_to_session()`` is the one call that queries Annoy (a live session's vector is new).

All methods only read, so one instance can be shared between threads. (Annoy's Python binding
holds the GIL during a query; its maintainers describe concurrent queries as safe, spotify/annoy
#260 and #332.)
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recommender.core.artifacts import read_manifest
from recommender.core.errors import ArtifactError
from recommender.core.vectors import unit_rows

_RAISE = object()  # default for ``default=``: unknown ids raise KeyError
POPULAR = "popular"


class RelatedItems:
    """Related items of an INDEX dir: ``related(id, k)``, ``related_many``, ``related_to_session``.

    Use :meth:`load`; the constructor is internal.
    """

    def __init__(self, path, manifest, ids, counts, neighbors, scores, vectors, annoy):
        self.path = Path(path)
        self.manifest = manifest
        self.k = int(manifest["k"])  # K: the most related items stored per item
        self.scoring = manifest["scoring"]
        self._ids = ids  # tuple: row -> item_id
        self._rows = {item: row for row, item in enumerate(ids)}
        self._counts = counts
        self._nb = neighbors  # plain ndarray views of the memory maps (no np.memmap overhead)
        self._sc = scores
        # related() unpacks k values straight from the mapped bytes with a precompiled Struct per
        # k and maps rows to ids with one itemgetter call: no numpy object per call, few bytecodes.
        self._nb_bytes = memoryview(neighbors.reshape(-1)).cast("B")
        self._sc_bytes = memoryview(scores.reshape(-1)).cast("B")
        self._row_bytes = 4 * self.k
        self._structs = [None] + [
            (struct.Struct(f"={n}i"), struct.Struct(f"={n}f")) for n in range(1, self.k + 1)
        ]
        # Rows ending in -1 padding (tiny catalogues) take the filtering path; the manifest says
        # whether there are any, so opening a big index does not read the whole table.
        short = manifest.get("counts", {}).get("short_rows", 1)
        self._short = frozenset(np.nonzero(neighbors[:, -1] < 0)[0].tolist() if short else ())
        self._vectors = vectors
        self._annoy = annoy
        self._popular_rows: list[int] | None = None
        self._attrs = None  # AttributeVectors, loaded on first related_to_attributes()

    # --- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, index_dir: str | Path, verify: bool = False) -> RelatedItems:
        """Open an INDEX dir written by ``pin2vec index``.

        Checks the manifest's kind and version, every file's size against the manifest (before
        memory-mapping it or handing it to Annoy, which can crash the interpreter on a truncated
        file), and the dtypes and shapes of the arrays. ``verify=True`` also checks that every
        neighbour id is in range (reads the whole table once).

        Raises
        ------
        ArtifactError
            Naming the missing, truncated or malformed file.
        """
        path = Path(index_dir)
        manifest = read_manifest(path, "index")
        try:
            n, k, dim = (int(manifest["counts"]["items"]), int(manifest["k"]), int(manifest["dim"]))
            metric, files = manifest["metric"], manifest["files"]
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"{path / 'manifest.json'} lacks field {e}; rebuild the index")
        for name in ("items.parquet", "vectors.npy", "neighbors.npy", "scores.npy", "items.ann"):
            _check_size(path / name, (files.get(name) or {}).get("bytes"))
        neighbors = _load_npy(path / "neighbors.npy", np.int32, (n, k))
        scores = _load_npy(path / "scores.npy", np.float32, (n, k))
        vectors = _load_npy(path / "vectors.npy", np.float32, (n, dim))
        try:
            items = pq.read_table(path / "items.parquet", columns=["item_id", "count"])
        except (OSError, ValueError, pa.ArrowException) as e:
            raise ArtifactError(f"{path / 'items.parquet'} is unreadable: {e}") from None
        if items.num_rows != n:
            raise ArtifactError(f"{path / 'items.parquet'} has {items.num_rows} rows, expected {n}")
        if verify and not ((neighbors >= -1) & (neighbors < n)).all():
            raise ArtifactError(f"{path / 'neighbors.npy'} holds row ids outside [-1, {n})")
        from annoy import AnnoyIndex

        annoy = AnnoyIndex(dim, metric)
        try:
            annoy.load(str(path / "items.ann"))  # mmap
        except OSError as e:
            msg = f"{path / 'items.ann'} is not a loadable Annoy index: {e}"
            raise ArtifactError(msg) from None
        # Annoy trusts the file's contents; a file of the right size but wrong bytes shows up here
        # (before any query could read out of bounds).
        # (The tree count is no check: Annoy's load can count extra roots on tiny indexes.)
        indexed = int(manifest["counts"].get("indexed", n))  # cold rows may be query-only
        if annoy.get_n_items() != indexed:
            found = annoy.get_n_items()
            annoy.unload()
            raise ArtifactError(
                f"{path / 'items.ann'} holds {found} items; the manifest says {indexed}: the file "
                "is corrupt or from another index; rebuild the index"
            )
        ids = tuple(items.column("item_id").to_pylist())
        counts = items.column("count").to_numpy()
        return cls(path, manifest, ids, counts, neighbors, scores, vectors, annoy)

    # --- container protocol ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id) -> bool:
        return item_id in self._rows

    @property
    def item_ids(self) -> tuple[str, ...]:
        """Every item id, in row order."""
        return self._ids

    def __repr__(self) -> str:
        return f"RelatedItems({str(self.path)!r}, items={len(self)}, K={self.k}, {self.scoring})"

    # --- lookups ---------------------------------------------------------------------------------

    def related(
        self, item_id: str, k: int = 10, exclude: Iterable[str] = (), default=_RAISE
    ) -> list[tuple[str, float]]:
        """The ``k`` items most related to ``item_id``, best first, as ``(item_id, score)``.

        Scores are cosine similarities (``similar``) or inner products (``complementary``). Never
        includes ``item_id`` itself. At most K (``self.k``) items are stored per item: ``k > K``
        raises ValueError. Ids in ``exclude`` are skipped (the list is then filled from the stored
        K, so it may come back shorter than ``k``); fewer than ``k`` also come back when the
        catalogue has fewer than ``k + 1`` items.

        Unknown ``item_id`` raises KeyError unless ``default`` is given: ``"popular"`` returns the
        most engaged items (score = share of all engagements, not a similarity), a list of
        ``(item_id, score)`` pairs is returned as given.
        """
        row = self._rows.get(item_id)
        if row is None:
            return self._fallback(item_id, k, exclude, default)
        if not 0 < k <= self.k:
            self._bad_k(k)
        if exclude or row in self._short:
            return self._filtered(row, k, exclude)
        unpack_ids, unpack_scores = self._structs[k]
        offset = row * self._row_bytes
        rows = unpack_ids.unpack_from(self._nb_bytes, offset)
        scores = unpack_scores.unpack_from(self._sc_bytes, offset)
        if k == 1:
            return [(self._ids[rows[0]], scores[0])]
        return list(zip(itemgetter(*rows)(self._ids), scores))

    def related_many(
        self, item_ids: Sequence[str], k: int = 10, exclude: Iterable[str] = (), default=_RAISE
    ) -> list[list[tuple[str, float]]]:
        """:meth:`related` for each id in ``item_ids`` (one list per id, same order)."""
        if not 0 < k <= self.k:
            self._bad_k(k)
        related = self.related  # the per-id path is already the fast one
        return [related(i, k, exclude, default) for i in item_ids]

    def related_to_session(
        self,
        item_ids: Sequence[str],
        k: int = 10,
        exclude: Iterable[str] = (),
        half_life: float = 2.0,
        search_k: int | None = None,
        default=_RAISE,
    ) -> list[tuple[str, float]]:
        """Items related to a live session (oldest item first), queried through Annoy.

        The query is the weighted mean of the session items' unit-length input vectors, the item
        ``t`` places before the last weighted ``0.5 ** (t / half_life)``. Items of the session and
        ``exclude`` are never returned. Ids unknown to the index are skipped (new items appear in
        live sessions); if none is known, the call behaves like :meth:`related` with an unknown
        id (KeyError or ``default``). Scores: cosine to the query (``similar``) or inner product
        (``complementary``). ``k`` is not limited by K.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if half_life <= 0:
            raise ValueError(f"half_life must be > 0, got {half_life}")
        n = len(item_ids)
        known = [(pos, self._rows[i]) for pos, i in enumerate(item_ids) if i in self._rows]
        if not known:
            return self._fallback(list(item_ids), k, [*exclude, *item_ids], default)
        pos, rows = (np.array(x) for x in zip(*known))
        vecs = np.asarray(self._vectors[rows], dtype=np.float64)
        vecs = unit_rows(vecs)
        weights = 0.5 ** ((n - 1 - pos) / half_life)
        query = (weights[:, None] * vecs).sum(axis=0) / weights.sum()
        skip = set(rows.tolist()) | {self._rows[i] for i in exclude if i in self._rows}
        found, dist = self._annoy.get_nns_by_vector(
            query.tolist(), k + len(skip), search_k or int(self.manifest["search_k"]),
            include_distances=True,
        )
        angular = self.scoring == "similar"
        return [
            (self._ids[j], (1.0 - d * d / 2.0) if angular else d)
            for j, d in zip(found, dist)
            if j not in skip
        ][:k]

    def related_to_attributes(
        self,
        attributes: Mapping[str, object],
        k: int = 10,
        exclude: Iterable[str] = (),
        default=_RAISE,
    ) -> list[tuple[str, float]]:
        """Items related to an item known only by its attributes (not in the index at all).

        ``attributes`` maps catalogue columns to values as the catalogue holds them:
        ``{"brand": "acme", "price": 12.99, "tags": ["a", "b"]}`` (or ``"a|b"``). The query is
        the item's attribute vector, composed as for cold items at index time, matched by
        exact cosine against the candidates' attribute vectors (``attribute_space.npy``), like
        cold rows at index time. Columns and values the model never saw are ignored with a
        ``UserWarning``; if no value is known the call behaves like :meth:`related` with an
        unknown id (KeyError or ``default``). Needs an index built from a model trained with a
        catalogue.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        attrs = self._attribute_vectors()
        tokens, ignored = attrs.encode(dict(attributes))
        if ignored:
            warnings.warn(f"ignored unknown attribute column(s)/value(s): {ignored}",
                          stacklevel=2)
        if not tokens:
            return self._fallback(f"attributes {dict(attributes)!r}", k, exclude, default)
        query, _ = attrs.compose([tokens])
        scores = self._space @ unit_rows(query.astype(np.float32))[0]
        popularity = float((self.manifest.get("cold") or {}).get("popularity") or 0.0)
        if popularity:  # as for cold rows at index time (recommender/index/cold.py)
            scores += np.float32(popularity) * np.log1p(self._counts[: len(scores)]).astype(
                np.float32)
        for i in exclude:
            if self._rows.get(i, len(scores)) < len(scores):
                scores[self._rows[i]] = -np.inf
        top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
        top = top[np.lexsort((top, -scores[top]))]
        return [(self._ids[j], float(scores[j])) for j in top if np.isfinite(scores[j])]

    def _attribute_vectors(self):
        if self._attrs is None:
            from recommender.core.attributes import AttributeVectors

            if not (self.path / "attributes.json").is_file():
                raise ArtifactError(
                    f"{self.path} has no attribute vectors: train with --catalog and "
                    "--catalog-attributes, then rebuild the index")
            self._attrs = AttributeVectors.load(self.path, mmap=True)
            space = np.load(self.path / "attribute_space.npy", allow_pickle=False)
            self._space = unit_rows(np.asarray(space, dtype=np.float32))
        return self._attrs

    def vector(self, item_id: str) -> np.ndarray:
        """A copy of ``item_id``'s input vector (float32 [d])."""
        row = self._rows.get(item_id)
        if row is None:
            raise KeyError(self._unknown_message(item_id))
        return np.array(self._vectors[row])

    # --- helpers ---------------------------------------------------------------------------------

    def _filtered(self, row: int, k: int, exclude: Iterable[str]) -> list[tuple[str, float]]:
        ids, excluded = self._ids, set(exclude)
        out = [
            (ids[j], s)
            for j, s in zip(self._nb[row].tolist(), self._sc[row].tolist())
            if j >= 0 and ids[j] not in excluded
        ]
        return out[:k]

    def popular(self, k: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The ``k`` most engaged items (by ``count``), with their share of all engagements."""
        if self._popular_rows is None:  # benign race: every thread computes the same list
            self._popular_rows = np.argsort(-self._counts, kind="stable").tolist()
        total = float(self._counts.sum()) or 1.0
        excluded = set(exclude)
        out = []
        for j in self._popular_rows:
            if self._ids[j] not in excluded:
                out.append((self._ids[j], float(self._counts[j]) / total))
                if len(out) == k:
                    break
        return out

    def _fallback(self, item_id, k, exclude, default) -> list[tuple[str, float]]:
        if default is _RAISE:
            raise KeyError(self._unknown_message(item_id))
        if isinstance(default, str):
            if default != POPULAR:
                raise ValueError(f"default must be {POPULAR!r} or a list of (item_id, score)")
            skip = [*exclude, *([item_id] if isinstance(item_id, str) else [])]
            return self.popular(k, skip)
        return list(default)

    def _unknown_message(self, item_id) -> str:
        return (
            f"item {item_id!r} is not in the index ({len(self):,} items, e.g. {self._ids[0]!r}); "
            "ids are strings -- check the id, or pass default='popular' for a popularity fallback"
        )

    def _bad_k(self, k: int):
        if k > self.k:
            raise ValueError(
                f"k={k} but this index stores only the top K={self.k} related items per item; "
                f"rebuild it with `pin2vec index --k {k}` or ask for k <= {self.k}"
            )
        raise ValueError(f"k must be >= 1, got {k}")


def _check_size(path: Path, expected) -> None:
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; rebuild the index with `pin2vec index`")
    size = path.stat().st_size
    if expected is None:
        raise ArtifactError(f"{path.parent / 'manifest.json'} records no size for {path.name}")
    if size != int(expected):
        raise ArtifactError(
            f"{path} is {size:,} bytes but the manifest says {int(expected):,}: the file is "
            "truncated or was replaced; rebuild the index with `pin2vec index`"
        )


def _load_npy(path: Path, dtype, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path} is not a readable .npy file: {e}") from None
    if array.dtype != dtype or array.shape != shape or not array.flags.c_contiguous:
        raise ArtifactError(
            f"{path} is {array.dtype}{list(array.shape)}, expected {np.dtype(dtype)}{list(shape)}"
            " in C order"
        )
    return np.asarray(array)  # plain ndarray over the same mapping: cheaper to index
