"""Attribute-value vectors: the MODEL/INDEX contract entry for cold items (docs/architecture.md).

Files (all written atomically; ``attributes.json`` last, so its presence marks a complete set):

* ``attribute_vectors.npy`` float32 [A, d]: one vector per attribute value (token), in the item
  vectors' space;
* ``attribute_values.parquet``: ``token`` (``"column=value"``), ``column``, ``items`` (trained
  items carrying it), in row order of the vectors;
* ``item_attributes.parquet`` (MODEL only): ``item_id``, ``tokens`` list<string> for every
  catalogue item, warm or not -- what the index builds cold items' vectors from;
* ``attribute_popularity.npy`` float64 [trained items] (only when the validated cold scoring
  uses recent engagements, ``cold_scoring.recency > 0``): each trained item's recent engagements
  in the MODEL's row order, what cold scoring's popularity term reads instead of the counts
  (:mod:`recommender.train.cold_choice`);
* ``attributes.json``: ``format_version``, ``kind: "attributes"``, the schema (columns, kinds,
  numeric bucket edges, separator), the training mode and counts.

An item's attribute vector is the mean over its columns of the mean of its known values' vectors
(so five tags weigh as much as one brand): exactly the input the trainer fitted
(:mod:`recommender.train.attributes`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recommender.core.artifacts import save_npy, write_json, write_parquet
from recommender.core.catalog import AttributeSchema, column_of
from recommender.core.errors import ArtifactError

KIND = "attributes"
FORMAT_VERSION = 1
FILES = ("attribute_vectors.npy", "attribute_values.parquet", "attributes.json")


class AttributeVectors:
    """Vectors of attribute values, their tokens and schema; composes vectors for items."""

    def __init__(self, schema: AttributeSchema, tokens: list[str], items: np.ndarray,
                 vectors: np.ndarray, info: dict | None = None,
                 item_ids: list[str] | None = None, item_tokens: list[list[str]] | None = None,
                 recent: np.ndarray | None = None):
        self.schema = schema
        self.tokens = list(tokens)
        self.items = np.asarray(items, dtype=np.int64)
        self.vectors = vectors
        self.info = dict(info or {})
        self.item_ids = item_ids  # the catalogue (MODEL only)
        self.item_tokens = item_tokens
        self.row = {t: i for i, t in enumerate(self.tokens)}
        self.recent = recent  # float64 [trained items]: recent engagements (see the module)

    def __len__(self) -> int:
        return len(self.tokens)

    # --- composing ------------------------------------------------------------------------------

    def weights(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows and weights of an item's known tokens: 1 / (columns * values in the column)."""
        known = [t for t in tokens if t in self.row]
        if not known:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        cols = [column_of(t) for t in known]
        per_col = {c: cols.count(c) for c in cols}
        w = np.array([1.0 / (len(per_col) * per_col[c]) for c in cols], np.float32)
        return np.array([self.row[t] for t in known], np.int64), w

    def compose(self, token_lists: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Attribute vectors float32 [n, d] of items given as token lists, and a mask of the
        items with at least one known token (the others get zeros)."""
        out = np.zeros((len(token_lists), self.vectors.shape[1]), np.float32)
        has = np.zeros(len(token_lists), bool)
        for i, tokens in enumerate(token_lists):
            rows, w = self.weights(tokens)
            if len(rows):
                out[i] = w @ self.vectors[rows]
                has[i] = True
        return out, has

    def encode(self, attributes: dict) -> tuple[list[str], list[str]]:
        """Known tokens of ``{column: value}``, and what was ignored (unknown columns and values,
        as ``column`` or ``column=value``)."""
        tokens, unknown = self.schema.encode(attributes)
        return [t for t in tokens if t in self.row], unknown + [t for t in tokens
                                                               if t not in self.row]

    def popularity(self, counts: np.ndarray) -> np.ndarray:
        """What cold scoring's popularity term reads for candidates whose first rows are the
        MODEL's items (in its row order) and the rest cold (no engagements): the recent
        engagements when the validated choice uses them, else ``counts``."""
        if self.recent is None:
            return np.asarray(counts)
        out = np.zeros(len(counts), np.float64)
        m = min(len(counts), len(self.recent))
        out[:m] = self.recent[:m]
        return out

    # --- files ----------------------------------------------------------------------------------

    def write(self, directory, with_items: bool = True) -> list[str]:
        """Write the files into ``directory`` (``attributes.json`` last); return their names."""
        directory = Path(directory)
        save_npy(directory / "attribute_vectors.npy",
                 np.ascontiguousarray(self.vectors, dtype=np.float32))
        write_parquet(directory / "attribute_values.parquet", pa.table({
            "token": pa.array(self.tokens, pa.string()),
            "column": pa.array([column_of(t) for t in self.tokens], pa.string()),
            "items": pa.array(self.items, pa.int64())}))
        names = list(FILES)
        if self.recent is not None:
            save_npy(directory / "attribute_popularity.npy",
                     np.ascontiguousarray(self.recent, dtype=np.float64))
            names.append("attribute_popularity.npy")
        if with_items and self.item_ids is not None:
            write_parquet(directory / "item_attributes.parquet", pa.table({
                "item_id": pa.array(self.item_ids, pa.string()),
                "tokens": pa.array(self.item_tokens, pa.list_(pa.string()))}))
            names.append("item_attributes.parquet")
        write_json(directory / "attributes.json", {
            "format_version": FORMAT_VERSION, "kind": KIND, "schema": self.schema.to_dict(),
            "values": len(self.tokens), "dim": int(self.vectors.shape[1]), **self.info})
        return names

    @classmethod
    def load(cls, directory, mmap: bool = False) -> AttributeVectors:
        """Read the files of :meth:`write`; ``item_attributes.parquet`` if present."""
        directory = Path(directory)
        meta_path = directory / "attributes.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("kind") != KIND or meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"kind {meta.get('kind')!r} version "
                                 f"{meta.get('format_version')!r}, expected {KIND!r} "
                                 f"{FORMAT_VERSION}")
            schema = AttributeSchema.from_dict(meta["schema"])
            vectors = np.load(directory / "attribute_vectors.npy",
                              mmap_mode="r" if mmap else None, allow_pickle=False)
            values = pq.read_table(directory / "attribute_values.parquet",
                                   columns=["token", "items"])
            ids = tokens = None
            if (directory / "item_attributes.parquet").is_file():
                t = pq.read_table(directory / "item_attributes.parquet",
                                  columns=["item_id", "tokens"])
                ids = t.column("item_id").to_pylist()
                tokens = [x or [] for x in t.column("tokens").to_pylist()]
            recent = None
            if float((meta.get("cold_scoring") or {}).get("recency") or 0) > 0:
                recent = np.load(directory / "attribute_popularity.npy", allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as e:
            raise ArtifactError(f"cannot read attribute vectors in {directory}: {e}") from None
        if (vectors.dtype != np.float32 or vectors.ndim != 2
                or vectors.shape[0] != values.num_rows or not np.isfinite(vectors).all()):
            raise ArtifactError(
                f"{directory / 'attribute_vectors.npy'} is {vectors.dtype}{list(vectors.shape)}; "
                f"expected finite float32 [{values.num_rows}, d]; retrain the model")
        if recent is not None and (recent.dtype != np.float64 or recent.ndim != 1
                                   or not np.isfinite(recent).all() or (recent < 0).any()):
            raise ArtifactError(
                f"{directory / 'attribute_popularity.npy'} is {recent.dtype}{list(recent.shape)}"
                "; expected finite float64 [items] >= 0; retrain the model")
        info = {k: v for k, v in meta.items()
                if k not in ("format_version", "kind", "schema", "values", "dim")}
        return cls(schema, values.column("token").to_pylist(),
                   values.column("items").to_numpy(), np.asarray(vectors), info, ids, tokens,
                   recent)


# --- scoring cold queries -----------------------------------------------------------------------

COLD_SCORINGS = ("space", "context")
SAME = "same:"  # scoring "same:<column>": popular-within-the-same-value blended with cosine
SAME_OFFSET = 64.0  # above any popularity + cosine term (log(1 + count) < 44 for any count)


def valid_scoring(scoring: str) -> bool:
    """``space``, ``context`` or ``same:<column>``."""
    return scoring in COLD_SCORINGS or (scoring.startswith(SAME) and len(scoring) > len(SAME))


class SharedValues:
    """Which candidates share a value of one column with a query: the candidates' token lists
    inverted per value of ``column`` (``"column=value"`` tokens)."""

    def __init__(self, candidate_tokens: list[list[str]], column: str):
        self.column, self.n = column, len(candidate_tokens)
        postings: dict[str, list[int]] = {}
        for r, tokens in enumerate(candidate_tokens):
            for t in set(tokens or ()):
                if column_of(t) == column:
                    postings.setdefault(t, []).append(r)
        self.postings = {t: np.array(v, np.int64) for t, v in postings.items()}

    def __call__(self, query_tokens: list[list[str]]) -> np.ndarray:
        """bool [queries, candidates]: the candidate carries a value of the column the query
        carries."""
        out = np.zeros((len(query_tokens), self.n), bool)
        for i, tokens in enumerate(query_tokens):
            for t in set(tokens or ()):
                rows = self.postings.get(t)
                if rows is not None:
                    out[i, rows] = True
        return out


def query_cosine(queries: np.ndarray, space: np.ndarray) -> np.ndarray:
    """float32 [n, candidates]: cosine of each query with each candidate's ``space`` vector."""
    from recommender.core.vectors import unit_rows

    return (unit_rows(np.asarray(queries, np.float32))
            @ unit_rows(np.asarray(space, np.float32)).T)


def cold_scores(queries: np.ndarray, scoring: str, popularity: float, counts: np.ndarray,
                space: np.ndarray | None = None, context: np.ndarray | None = None,
                shared: np.ndarray | None = None, cosine: np.ndarray | None = None
                ) -> np.ndarray:
    """Scores [n, candidates] of cold queries (attribute vectors) against candidates.

    ``scoring="space"``: cosine with the candidates' attribute vectors (``space``);
    ``"context"``: the skip-gram logit ``query · context`` with the candidates' output (context)
    vectors -- what the attributes were trained to predict, the W·C scoring of warm items. Both
    add ``popularity * log(1 + engagements)`` of the candidate (``counts``); float32.

    ``"same:<column>"`` (``shared``: bool [n, candidates], :class:`SharedValues` of that column):
    candidates sharing a value of the column with the query first, each group ranked by
    ``popularity * log(1 + engagements) + (1 - popularity) * cosine`` (``0 <= popularity <=
    1``); float64, so equal counts tie exactly. ``popularity = 1`` is exactly the baseline
    "most popular within the same value, then most popular" (ties to the lower row); ``0`` is
    attribute cosine within the same value.

    ``cosine``: the queries' cosine with the candidates' ``space`` vectors if already computed
    (:func:`query_cosine`, the same float32 numbers), for callers scoring many settings.
    """

    queries = np.asarray(queries, np.float32)
    if scoring.startswith(SAME) and valid_scoring(scoring):
        if shared is None:
            raise ValueError(f"cold scoring {scoring!r} needs the shared-value mask")
        p = float(popularity)
        scores = SAME_OFFSET * np.asarray(shared, np.float64)
        scores += p * np.log1p(np.asarray(counts, np.float64))[None]
        if p < 1:
            cos = query_cosine(queries, space) if cosine is None else cosine
            scores += (1 - p) * cos.astype(np.float64)
        return scores
    if scoring == "space":
        scores = query_cosine(queries, space) if cosine is None else cosine.copy()
    elif scoring == "context":
        scores = queries @ np.asarray(context, np.float32).T
    else:
        raise ValueError(f"cold scoring must be one of {COLD_SCORINGS} or same:<column>, "
                         f"not {scoring!r}")
    if popularity:
        scores += np.float32(popularity) * np.log1p(np.asarray(counts)).astype(np.float32)[None]
    return scores
