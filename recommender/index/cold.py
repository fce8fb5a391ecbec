"""Cold items in the INDEX: rows for catalogue items with no or too few engagements.

When the MODEL dir holds attribute vectors (``pin2vec train --catalog ... --catalog-attributes``),
:func:`extend_rows` gives the index builder

* the model's items in their order, each with its learned vector -- except items with fewer than
  ``min_engagements`` training engagements, which take their attribute vector, and, with
  ``prior > 0``, rare items (at most ``prior_max_count`` engagements; by default items seen once
  or twice, prior 1), whose vector is blended towards their attribute vector with weight
  ``prior / (count + prior)`` (shrinkage: the fewer the engagements, the more the attributes say);
* then every catalogue item absent from the model that has at least one known attribute value,
  with its attribute vector ("cold" rows).

Cold rows are always *query* rows (``related(cold_id)`` answers). Their related items are
scored exactly (:func:`cold_table`, :func:`recommender.core.attributes.cold_scores`) in one of
two ways, each plus ``popularity * log(1 + engagements)`` of the candidate:

* ``space``: cosine of the cold item's attribute vector with every candidate's attribute vector
  (its learned vector if it has no known attribute) -- attributes matched with attributes;
* ``context``: the skip-gram logit of the attribute vector against the candidates' context
  vectors -- the items the attributes were trained to predict next to the item, the W·C scoring
  of warm items.

Which one, and the popularity weight, is the model's choice, made by validation on pseudo-cold
items during training (:mod:`recommender.train.cold_choice`); ``ColdConfig.scoring`` /
``popularity`` override it. Cold rows are *candidates* (the backend holds them, so they can be
returned as related items of warm items, too) only with ``cold_candidates=True``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from recommender.core.attributes import (
    COLD_SCORINGS,
    SAME,
    AttributeVectors,
    SharedValues,
    cold_scores,
    valid_scoring,
)
from recommender.core.errors import ArtifactError, ConfigError
from recommender.core.vectors import top_k_rows, unit_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColdConfig:
    """How the index uses the model's attribute vectors (ignored for a model without them)."""

    min_engagements: int = 1  # model items seen fewer times take their attribute vector
    # Blend the vectors of items with at most prior_max_count (below) engagements (0: any) towards
    # their attributes, weight prior / (count + prior); 0 = off. Default: items seen once or
    # twice, by measurement (benchmarks/bench_coldstart.py: tail HR@10 up on every log, warm
    # within 0.001; blending every item cost 0.004-0.012 of warm HR@10 on the dense log).
    prior: float = 1.0
    cold_candidates: bool = False  # cold items may be returned as related items, too
    include_cold: bool = True  # False: no cold rows at all (the index as without a catalogue)
    # How cold rows find related items (recommender.core.attributes.cold_scores): "space"
    # (cosine of attribute vectors) or "context" (attribute vector · context vectors), plus
    # popularity * log(1 + engagements). "auto" / None: the model's choice, made by validation
    # on pseudo-cold items when it was trained (recommender/train/cold_choice.py), with the
    # recent engagements it chose if any; set either and all-time engagements are read.
    popularity: float | None = None
    scoring: str = "auto"
    prior_max_count: int = 2  # see prior

    def __post_init__(self):
        if self.scoring != "auto" and not valid_scoring(self.scoring):
            raise ConfigError(f"cold scoring must be auto, one of {COLD_SCORINGS} or "
                              f"same:<column>, "
                              f"got {self.scoring!r}")
        if not isinstance(self.min_engagements, int) or self.min_engagements < 0:
            raise ConfigError(
                f"min_engagements must be a whole number >= 0, got {self.min_engagements!r}")
        if self.popularity is not None and not self.popularity >= 0:
            raise ConfigError(f"cold popularity must be >= 0, got {self.popularity!r}")
        if (self.scoring.startswith(SAME) and self.popularity is not None
                and not self.popularity <= 1):
            raise ConfigError(f"cold popularity must be in [0, 1] with {self.scoring}, "
                              f"got {self.popularity!r}")
        if not self.prior >= 0:
            raise ConfigError(f"attribute prior must be >= 0, got {self.prior!r}")
        if not isinstance(self.prior_max_count, int) or self.prior_max_count < 0:
            raise ConfigError(f"prior_max_count must be a whole number >= 0 (0 = any item), "
                              f"got {self.prior_max_count!r}")


@dataclass
class ColdRows:
    """The rows an index holds when the model has attribute vectors."""

    ids: list[str]
    counts: pa.Array
    vectors: np.ndarray  # float32 [N, d]: the query vectors of every row
    model_rows: int  # rows [0, model_rows) are the model's items
    candidates: int  # rows [0, candidates) are in Annoy
    attributes: AttributeVectors
    stats: dict
    space: np.ndarray  # float32 [N, d]: attribute vector of each row (learned one if it has none)
    scoring: str = "space"  # how cold rows are matched (ColdConfig.scoring, resolved)
    popularity: float = 0.0
    chosen_by: str = "default"
    recency: float = 0.0  # > 0: the popularity term reads the model's recent engagements
    context: np.ndarray | None = None  # float32 [model_rows, d] with scoring "context"

    def popularity_counts(self, n: int) -> np.ndarray:
        """The engagements cold scoring reads for the first ``n`` rows."""
        counts = self.counts.to_numpy(zero_copy_only=False)[:n]
        return self.attributes.popularity(counts) if self.recency else counts


def resolve(config: ColdConfig, attrs: AttributeVectors) -> tuple[str, float, str, float]:
    """(scoring, popularity, how they were chosen, recency): flags win (with all-time
    engagements, recency 0), then the model's validated choice (``attributes.json``
    ``cold_scoring``), then cosine without popularity."""
    chosen = attrs.info.get("cold_scoring") or {}
    scoring = config.scoring if config.scoring != "auto" else chosen.get("scoring", "space")
    popularity = (config.popularity if config.popularity is not None
                  else float(chosen.get("popularity", 0.0)))
    recency = 0.0
    if config.scoring == "auto" and config.popularity is None:
        how = chosen.get("chosen_by", "default (model without a choice)")
        if attrs.recent is not None:
            recency = float(chosen.get("recency") or 0.0)
    else:
        how = "options"
    return scoring, popularity, how, recency


def blend_mask(counts: np.ndarray, max_count: int) -> np.ndarray:
    """Items whose vectors are blended towards their attributes: ``counts <= max_count``, or all
    items when ``max_count`` is 0."""
    counts = np.asarray(counts)
    return counts <= max_count if max_count else np.ones(len(counts), bool)


def blend(item: np.ndarray, attr: np.ndarray, counts: np.ndarray, prior: float) -> np.ndarray:
    """``(1 - w) * unit(item) + w * unit(attr)`` with ``w = prior / (count + prior)``, rescaled to
    the item vector's length (so dot-product scoring keeps its scale)."""
    w = (prior / (counts + prior))[:, None]
    mixed = (1 - w) * unit_rows(item.astype(np.float64)) + w * unit_rows(attr.astype(np.float64))
    norm = np.linalg.norm(item, axis=1, keepdims=True)
    return (unit_rows(mixed) * norm).astype(np.float32)


def extend_rows(model_dir: Path, ids: list[str], counts: pa.Array, vectors: np.ndarray,
                config: ColdConfig, scoring: str,
                context: np.ndarray | None = None) -> ColdRows | None:
    """The index rows with cold items, or None when the model has no attribute vectors."""
    if not (Path(model_dir) / "attributes.json").is_file():
        return None
    attrs = AttributeVectors.load(model_dir)
    if attrs.item_ids is None:
        return None
    if attrs.recent is not None and len(attrs.recent) != len(ids):
        raise ArtifactError(f"{model_dir}: attribute_popularity.npy has {len(attrs.recent)} rows "
                            f"for {len(ids)} items; re-run pin2vec train")
    if config.cold_candidates and scoring != "similar":
        raise ConfigError("--cold-candidates needs --scoring similar: cold items have no "
                          "context vectors to be scored as complementary candidates")
    by_id = dict(zip(attrs.item_ids, attrs.item_tokens))
    n_model = len(ids)
    count = counts.to_numpy(zero_copy_only=False).astype(np.int64)
    attr_vecs, has = attrs.compose([by_id.get(i, []) for i in ids])
    out = np.array(vectors, dtype=np.float32)
    low = has & (count < config.min_engagements)
    out[low] = attr_vecs[low]
    blended = has & ~low & blend_mask(count, config.prior_max_count)
    if config.prior > 0 and blended.any():
        out[blended] = blend(out[blended], attr_vecs[blended], count[blended], config.prior)
    known = set(ids)
    cold_ids = [i for i in attrs.item_ids if i not in known] if config.include_cold else []
    cold_vecs, cold_has = attrs.compose([by_id[i] for i in cold_ids])
    cold_ids = [i for i, h in zip(cold_ids, cold_has) if h]
    no_attrs = int((~cold_has).sum())
    if no_attrs:
        log.warning("%d catalogue item(s) have no engagements and no known attribute value; "
                    "they get no index row", no_attrs)
    all_ids = ids + cold_ids
    all_counts = pa.concat_arrays([counts.cast(pa.int64()),
                                   pa.array(np.zeros(len(cold_ids), np.int64))])
    stacked = np.concatenate([out, cold_vecs[cold_has]]).astype(np.float32)
    n_cand = len(all_ids) if config.cold_candidates else n_model
    stats = {"warm": n_model - int(low.sum()), "cold": len(cold_ids) + int(low.sum()),
             "cold_catalogue": len(cold_ids), "cold_below_min_engagements": int(low.sum()),
             "tail_blended": int(blended.sum()) if config.prior > 0 else 0,
             "catalogue_without_attributes": no_attrs,
             "attribute_values": len(attrs)}
    space = np.where(has[:, None], attr_vecs, vectors).astype(np.float32)
    space = np.concatenate([space, stacked[n_model:]]).astype(np.float32)
    how = resolve(config, attrs)
    if how[0] == "context" and context is None:
        raise ConfigError("cold scoring 'context' needs the model's context vectors")
    ctx = np.asarray(context, np.float32) if how[0] == "context" else None
    return ColdRows(all_ids, all_counts, stacked, n_model, n_cand, attrs, stats, space, *how,
                    ctx)


def half_life(attrs: AttributeVectors, recency: float) -> float | None:
    """The half-life (seconds) of the recent engagements the model chose, if ``recency``."""
    return (attrs.info.get("cold_scoring") or {}).get("half_life") if recency else None


def describe(cold: dict) -> str:
    """``"same:category scoring, popularity 0.3 of recent engagements (half-life 9.7 days),
    validation"``: a manifest's ``cold`` entry in words."""
    text = f"{cold['scoring']} scoring, popularity {cold['popularity']:g}"
    if cold.get("recency"):
        days = (cold.get("half_life") or 0) / 86400
        text += f" of recent engagements (half-life {days:.3g} days)"
    return f"{text}, {cold['chosen_by']}"


def cold_manifest(config: ColdConfig, rows: ColdRows) -> dict:
    """The INDEX manifest's ``cold`` entry: the options, with the scoring actually used."""
    return {**asdict(config), "scoring": rows.scoring, "popularity": rows.popularity,
            "chosen_by": rows.chosen_by, "recency": rows.recency,
            "half_life": half_life(rows.attributes, rows.recency)}


def cold_table(rows: ColdRows, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Related items of the cold rows ``[model_rows, N)``: exact top-``k`` of
    :func:`cold_scores` (``rows.scoring``, ``rows.popularity``) over the candidate rows, never
    the row itself. With ``context`` scoring the candidates are the model's items (cold rows
    have no context vectors)."""
    n_model, n = rows.model_rows, len(rows.ids)
    n_cand = n_model if rows.scoring == "context" else rows.candidates
    counts = rows.popularity_counts(n_cand)
    shared = None
    if rows.scoring.startswith(SAME):
        by_id = dict(zip(rows.attributes.item_ids, rows.attributes.item_tokens))
        shared = SharedValues([by_id.get(i, []) for i in rows.ids[:n_cand]],
                              rows.scoring[len(SAME):])

    def scores_of(s: int, e: int) -> np.ndarray:  # cold rows s..e-1 of the cold block
        s, e = s + n_model, e + n_model
        sc = cold_scores(rows.vectors[s:e], rows.scoring, rows.popularity, counts,
                         rows.space[:n_cand], rows.context,
                         shared([by_id.get(i, []) for i in rows.ids[s:e]]) if shared else None)
        if n_cand > n_model:  # cold rows are candidates too: never the row itself
            sc[np.arange(e - s), np.arange(s, e)] = -np.inf
        return sc

    return scored_top_k(n - n_model, k, scores_of, block)


def scored_top_k(n: int, k: int, scores_of, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(neighbours int32 [n, k], scores float32 [n, k]) of ``n`` query rows, scored a block at
    a time by ``scores_of(start, end)`` ([end - start, candidates]): the exact top-``k`` with
    ties to the lower candidate (:func:`top_k_rows`, as the evaluation and the validation rank
    them); places without a finite score hold -1 / NaN."""
    nbrs = np.full((n, k), -1, np.int32)
    out = np.full((n, k), np.nan, np.float32)
    for s in range(0, n, block):
        e = min(s + block, n)
        sc = scores_of(s, e)
        top = top_k_rows(sc, k)
        nbrs[s:e, :top.shape[1]] = top
        out[s:e, :top.shape[1]] = np.take_along_axis(sc, top, 1)
    bad = ~np.isfinite(out)
    nbrs[bad], out[bad] = -1, np.nan
    return nbrs, out
