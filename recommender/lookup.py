"""``RelatedItems``: related-item lookups over an INDEX dir, and ``pin2vec related``.

Build once, read many: :meth:`RelatedItems.load` memory-maps the precomputed table
(``neighbors.npy``/``scores.npy``) and the vectors, so opening an index in many processes costs
one page-cache copy of the data plus each process's id -> row dictionary. ``related()`` is a
dictionary lookup, one slice of each memory-mapped row and a list comprehension -- no search.
``related_to_session()`` is the one call that searches (a live session's vector is new): through
the index's backend -- Annoy's memory-mapped file, the HNSW graph (loaded on first use), or exact
search over the memory-mapped vectors when the index has no ANN file -- and re-scores the found
items exactly, so scores mean the same whatever the backend.
On an index without vectors (``recommender.scorers``: co-occurrence, EASE, hybrid) it sums
the session items' stored rows instead.

All methods only read, so one instance can be shared between threads (concurrent Annoy and
hnswlib queries are safe; spotify/annoy #260 and #332).
"""

from __future__ import annotations

import struct
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recommender.core.artifacts import read_manifest
from recommender.core.errors import ArtifactError
from recommender.core.integrity import check_table, verify_files
from recommender.core.vectors import top_k_rows, unit_rows

_RAISE = object()  # default for ``default=``: unknown ids raise KeyError
POPULAR = "popular"


class RelatedItems:
    """Related items of an INDEX dir: ``related(id, k)``, ``related_many``, ``related_to_session``.

    Use :meth:`load`; the constructor is internal.
    """

    def __init__(self, path, manifest, ids, counts, neighbors, scores, vectors, backend):
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
        short = short if isinstance(short, int) and not isinstance(short, bool) else 1
        self._short = frozenset(np.nonzero(neighbors[:, -1] < 0)[0].tolist() if short else ())
        self._vectors = vectors
        # The search backend for related_to_session: opened already (Annoy, exact) or, for a
        # file that is read into memory (HNSW), on first use.
        self._backend = backend
        self._popular_rows: list[int] | None = None
        self._attrs = None  # AttributeVectors, loaded on first related_to_attributes()

    # --- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, index_dir: str | Path, verify: bool = True) -> RelatedItems:
        """Open an INDEX dir written by ``pin2vec index`` (or a scorer: co-occurrence, EASE, ...).

        Checks the manifest's kind, version and fields, every file's size and digest against the
        manifest (before memory-mapping it or handing it to an ANN library, which can crash the
        interpreter on a damaged file), the dtypes and shapes of the arrays, and that the
        related-item table holds only valid rows (:func:`recommender.core.integrity.check_table`).
        ``verify=False`` skips the digests and the table check (sizes, shapes and the manifest are
        still checked): for trusted hot reloads of a large index, at the risk of a crash on a
        damaged ANN file.

        Raises
        ------
        ArtifactError
            Naming the missing, truncated, damaged or malformed file or manifest field.
        """
        path = Path(index_dir)
        manifest = read_manifest(path, "index")
        n, k, dim, metric = _index_fields(path / "manifest.json", manifest)
        verify_files(path, manifest, digests=verify)  # every file the manifest lists
        # Indexes from before the backends were Annoy's; one without any search backend still
        # loads, and only its session queries are refused.
        listed = manifest.get("checksums") or {}
        backend = manifest.get("backend") or ("annoy" if "items.ann" in listed else None)
        neighbors = _load_npy(path / "neighbors.npy", np.int32, (n, k))
        scores = _load_npy(path / "scores.npy", np.float32, (n, k))
        try:
            items = pq.read_table(path / "items.parquet", columns=["item_id", "count"])
        except (OSError, ValueError, pa.ArrowException) as e:
            raise ArtifactError(f"{path / 'items.parquet'} is unreadable: {e}") from None
        if items.num_rows != n:
            raise ArtifactError(f"{path / 'items.parquet'} has {items.num_rows} rows, expected {n}")
        if verify:
            check_table(neighbors, scores, n, str(path / "neighbors.npy"))
            # the padded rows as found, not as the manifest claims (they take the slow path)
            counts = {**manifest["counts"], "short_rows": int((neighbors[:, -1] < 0).sum())}
            manifest = {**manifest, "counts": counts}
        ids = tuple(items.column("item_id").to_pylist())
        if len(set(ids)) != n or not all(isinstance(i, str) for i in ids):
            raise ArtifactError(f"{path / 'items.parquet'} has missing or duplicate item_id values")
        counts = items.column("count").to_numpy(zero_copy_only=False)
        vectors = session = None
        if metric is not None:  # indexes of vectors; a scorer's table has none
            vectors = _load_npy(path / "vectors.npy", np.float32, (n, dim))
            session = _SessionSearch(path, manifest, backend, metric, vectors, n, dim)
            if backend == "annoy":
                session.open()  # checks the file now, as a load error rather than at first query
        return cls(path, manifest, ids, counts, neighbors, scores, vectors, session)

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
        """Items related to a live session (oldest item first), found by the index's backend.

        The query is the weighted mean of the session items' unit-length input vectors, the item
        ``t`` places before the last weighted ``0.5 ** (t / half_life)``. Items of the session and
        ``exclude`` are never returned. Ids unknown to the index are skipped (new items appear in
        live sessions); if none is known, the call behaves like :meth:`related` with an unknown
        id (KeyError or ``default``). Scores: cosine to the query (``similar``) or inner product
        (``complementary``), computed exactly for the items found. ``k`` is not limited by K.
        ``search_k`` overrides the Annoy index's (ignored by the other backends).
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
        if self._backend is None:  # a scorer's table: no vectors to search
            return self._session_from_table(n, pos, rows, k, exclude, half_life)
        vecs = np.asarray(self._vectors[rows], dtype=np.float64)
        vecs = unit_rows(vecs)
        weights = 0.5 ** ((n - 1 - pos) / half_life)
        query = (weights[:, None] * vecs).sum(axis=0) / weights.sum()
        skip = set(rows.tolist()) | {self._rows[i] for i in exclude if i in self._rows}
        found, scores = self._backend.search(query.astype(np.float32), k + len(skip), search_k)
        return [(self._ids[j], s) for j, s in zip(found, scores) if j not in skip][:k]

    def _session_from_table(self, n, pos, rows, k, exclude, half_life):
        # No vectors (a scorer index): the session's items vote with their stored rows, weighted
        # by recency; the scores are the weighted sums of the rows' scores.
        weights = 0.5 ** ((n - 1 - pos) / half_life)
        nb = self._nb[rows]
        sc = np.nan_to_num(self._sc[rows], nan=0.0).astype(np.float64) * weights[:, None]
        ok = nb >= 0
        total = np.zeros(len(self))
        np.add.at(total, nb[ok], sc[ok])
        votes = np.zeros(len(self), dtype=bool)
        votes[nb[ok]] = True
        skip = set(rows.tolist()) | {self._rows[i] for i in exclude if i in self._rows}
        cand = [j for j in np.nonzero(votes)[0].tolist() if j not in skip]
        cand.sort(key=lambda j: (-total[j], -int(self._counts[j]), j))
        return [(self._ids[j], float(total[j])) for j in cand[:k]]

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
        the item's attribute vector, composed as for cold items at index time, scored exactly
        against the candidates as cold rows were at index time (the manifest's ``cold``
        scoring: cosine with ``attribute_space.npy`` or the logit against
        ``attribute_context.npy``, plus its popularity weight). Columns and values the model
        never saw are ignored with a ``UserWarning``; if no value is known the call behaves
        like :meth:`related` with an unknown id (KeyError or ``default``). Needs an index built
        from a model trained with a catalogue.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        attrs = self._attribute_vectors()
        tokens, ignored = attrs.encode(dict(attributes))
        if ignored:
            warnings.warn(f"ignored unknown attribute column(s)/value(s): {ignored}",
                          stacklevel=2)
        if not tokens:
            if default is not _RAISE:  # say so: the answer is not from the attributes
                warnings.warn("no known attribute value: returning the fallback "
                              f"({'most popular items' if default == POPULAR else 'default'})",
                              stacklevel=2)
            return self._fallback(f"attributes {dict(attributes)!r}", k, exclude, default)
        query, _ = attrs.compose([tokens])
        cold = self.manifest.get("cold") or {}
        popularity = float(cold.get("popularity") or 0.0)
        scoring = str(cold.get("scoring") or "space")
        counts = self._counts[: len(self._space)]
        if cold.get("recency"):  # the model's recent engagements, as the index read them
            counts = attrs.popularity(counts)
        if scoring.startswith("same:"):  # scored as cold rows at index time (index/cold.py)
            from recommender.core.attributes import SharedValues, cold_scores

            if self._shared is None:
                by_id = dict(zip(attrs.item_ids or [], attrs.item_tokens or []))
                self._shared = SharedValues([by_id.get(i, []) for i in
                                             self._ids[: len(self._space)]],
                                            scoring[len("same:"):])
            scores = cold_scores(query, scoring, popularity, counts, self._space,
                                 shared=self._shared([tokens]))[0]
            popularity = 0.0  # already in
        elif self._attr_context is not None:  # as cold rows at index time (index/cold.py)
            scores = self._attr_context @ query[0].astype(np.float32)
        else:
            scores = self._space @ unit_rows(query.astype(np.float32))[0]
        if popularity:
            scores += np.float32(popularity) * np.log1p(counts[: len(scores)]).astype(np.float32)
        for i in exclude:
            if self._rows.get(i, len(scores)) < len(scores):
                scores[self._rows[i]] = -np.inf
        top = top_k_rows(scores[None], k)[0]  # ties: the lower row, as the index's cold rows
        return [(self._ids[j], float(scores[j])) for j in top if np.isfinite(scores[j])]

    def _attribute_vectors(self):
        if self._attrs is None:
            from recommender.core.attributes import AttributeVectors

            if not (self.path / "attributes.json").is_file():
                raise ArtifactError(
                    f"{self.path} has no attribute vectors: train with --catalog and "
                    "--catalog-attributes, then rebuild the index")
            self._attrs = AttributeVectors.load(self.path, mmap=True)
            indexed = _indexed_rows(self.path / "manifest.json", self.manifest, len(self))
            space = _load_npy(self.path / "attribute_space.npy", np.float32,
                              (indexed, self.manifest["dim"]))
            self._space = unit_rows(np.asarray(space, dtype=np.float32))
            self._attr_context = None
            self._shared = None
            if (self.manifest.get("cold") or {}).get("scoring") == "context":
                model_rows = len(self) - int(self.manifest["counts"].get("cold_catalogue", 0))
                self._attr_context = np.asarray(_load_npy(
                    self.path / "attribute_context.npy", np.float32,
                    (model_rows, self.manifest["dim"])))
        return self._attrs

    def vector(self, item_id: str) -> np.ndarray:
        """A copy of ``item_id``'s input vector (float32 [d])."""
        if self._vectors is None:
            raise ArtifactError(
                f"{self.path} is a {self.scoring} index without item vectors; build an "
                "embedding index (`pin2vec index --model DIR`) for vectors"
            )
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


class _SessionSearch:
    """The INDEX dir's search backend for session queries, opened once (lazily for HNSW)."""

    def __init__(self, path: Path, manifest: dict, backend: str, metric: str, vectors, n, dim):
        self.path, self.manifest, self.name = path, manifest, backend
        self.metric = {"angular": "cosine", "dot": "dot"}.get(metric)
        self.n = n
        # Rows [0, indexed) are the backend's candidates; cold rows after them are query-only
        # (recommender/index/cold.py). Indexes without cold rows index every row.
        self.indexed = _indexed_rows(path / "manifest.json", manifest, n)
        self.items = vectors[: self.indexed]
        if self.metric == "dot" and (path / "context_vectors.npy").is_file():
            # the model's context vectors: cold rows have none (they are never dot candidates)
            self.items = _load_npy(path / "context_vectors.npy", np.float32, (self.indexed, dim))
        elif self.metric == "dot":
            self.items = None  # a complementary index from before context_vectors.npy
        self.backend = None
        self._lock = threading.Lock()

    def open(self):
        if self.backend is not None:
            return self.backend
        with self._lock:
            if self.backend is None:
                self.backend = self._open()
        return self.backend

    def _open(self):
        from recommender.index.backends import get_backend

        if self.metric is None or self.name is None:  # e.g. a count-based table
            raise ArtifactError(f"{self.path}: this index (scoring "
                                f"{self.manifest.get('scoring')!r}) has no vectors to search, so "
                                "it cannot answer session queries; use related()")
        cls = get_backend(self.name)
        file = self.path / cls.file_name if cls.file_name else None
        settings = dict(self.manifest.get("backend_settings")
                        or {"trees": self.manifest.get("trees"),
                            "search_k": self.manifest.get("search_k")})
        if self.items is None:
            raise ArtifactError(
                f"{self.path} is a complementary index from an older pin2vec without "
                "context_vectors.npy; rebuild it with `pin2vec index` for session queries"
            )
        try:
            backend = cls.open(file, self.items, self.metric, settings)
        except (OSError, RuntimeError) as e:
            raise ArtifactError(f"{file} is not a loadable {cls.name} index: {e}") from None
        found = backend.count()
        # The ANN library trusts the file's contents; a file of the right size but wrong bytes
        # shows up here, before any query could read out of bounds. (The tree count is no
        # check: Annoy's load can count extra roots on tiny indexes.)
        if found is not None and found != self.indexed:
            backend.close()
            raise ArtifactError(
                f"{file} holds {found} items; the manifest says {self.indexed}: the file is "
                "corrupt or from another index; rebuild the index"
            )
        return backend

    def search(self, query: np.ndarray, k: int, search_k: int | None):
        """(rows, scores) of up to ``k`` items for one query vector, best first."""
        backend = self.open()
        k = min(k, self.indexed)
        overrides = ({"search_k": min(search_k, 2**31 - 1)}  # Annoy takes a C int
                     if search_k and self.name == "annoy" else {})
        found = backend.search(query[None, :], k, **overrides)[0]
        found = found[found >= 0]
        cand = np.asarray(self.items[found], dtype=np.float32)
        q = query.astype(np.float32)
        if self.metric == "cosine":
            q, cand = unit_rows(q), unit_rows(cand)
        scores = (cand @ q).astype(np.float64)
        order = np.lexsort((found, -scores))
        return found[order].tolist(), scores[order].tolist()


def _indexed_rows(where: Path, manifest: dict, n: int) -> int:
    """How many rows the search backend holds: ``counts.indexed`` (cold rows after them are
    query-only), or every row for indexes without cold rows."""
    indexed = manifest["counts"].get("indexed", n)
    if not isinstance(indexed, int) or isinstance(indexed, bool) or not 1 <= indexed <= n:
        raise ArtifactError(f"{where}: counts.indexed is {indexed!r}, expected a whole number in "
                            f"[1, {n}]; rebuild the index")
    return indexed


_METRICS = ("angular", "dot")  # the metrics of vector indexes; None: a scorer's table


def _index_fields(where: Path, manifest: dict) -> tuple[int, int, int, str | None]:
    """(items, K, dim, metric) from an INDEX manifest, each checked (a hand edit is an error)."""

    def whole(value, name, low=1, high=None) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (
            high is not None and value > high
        ):
            bound = f" and <= {high:,}" if high is not None else ""
            raise ArtifactError(f"{where}: {name} is {value!r}, expected a whole number >= {low}"
                                f"{bound}; rebuild the index")
        return value

    counts = manifest.get("counts")
    n = whole(counts.get("items") if isinstance(counts, dict) else None, "counts.items", 2)
    k = whole(manifest.get("k"), "k")
    metric = manifest.get("metric")
    if metric is not None and metric not in _METRICS:
        raise ArtifactError(f"{where}: metric {metric!r} is not one of {list(_METRICS)} (or null "
                            "for a table without vectors); rebuild the index")
    dim = whole(manifest.get("dim"), "dim") if metric is not None else 0
    scoring = manifest.get("scoring")
    vector_scoring = {"similar": "angular", "complementary": "dot"}.get(scoring)
    if not isinstance(scoring, str) or (metric or vector_scoring) != vector_scoring:
        raise ArtifactError(f"{where}: scoring {scoring!r} does not go with metric {metric!r} "
                            "(similar: angular, complementary: dot, a scorer's table: null); "
                            "rebuild the index")
    settings = manifest.get("backend_settings")
    for source in (manifest, settings if isinstance(settings, dict) else {}):
        for name in ("search_k", "ef", "trees"):
            if source.get(name) is not None:
                whole(source[name], name, 1, 2**31 - 1)  # the ANN libraries take C ints
    return n, k, dim, metric


def _load_npy(path: Path, dtype, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ArtifactError(f"{path} is not a readable .npy file: {e}") from None
    if array.dtype != dtype or array.shape != shape or not array.flags.c_contiguous:
        raise ArtifactError(
            f"{path} is {array.dtype}{list(array.shape)}, expected {np.dtype(dtype)}{list(shape)}"
            " in C order"
        )
    return np.asarray(array)  # plain ndarray over the same mapping: cheaper to index
