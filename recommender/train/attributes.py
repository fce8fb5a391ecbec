"""Attribute-value vectors learned jointly with the item vectors (cold start).

Every catalogue attribute value (token ``"brand=acme"``, ``"price=q3"``; see
:mod:`recommender.core.catalog`) gets an input vector in the same space as the item input vectors.
The trainer hands each minibatch to :meth:`AttributeTrainer.step` after its own update; a share of
the batch's example groups is replayed with the *input item replaced by its attributes*: the
attribute vector of the item predicts the same context item against the same shared negatives and
the same output (context) vectors as the item's own vector does. Both therefore become scores
against one set of output vectors, and an item nobody has engaged with yet gets a usable vector
from its attributes alone.

Two ways to form the input, ``AttributeConfig.mode``:

* ``"mean"`` (EGES-style aggregation, Wang et al. 2018, without the per-item attention): the
  input is the mean over the item's columns of the mean of its values' vectors -- exactly the
  vector composed for a cold item (:meth:`AttributeVectors.compose`), so training fits what is
  used. Its logits are additive in the columns, so ``brand`` and ``price`` narrow each other down.
* ``"each"`` (Meta-Prod2Vec-style extra context, Vasile et al. 2016): one of the item's values,
  drawn at random, predicts the context alone; each value learns its marginal.

``benchmarks/bench_coldstart.py`` compares them; ``mean`` is the default because it measured
better on cold items on every log (see the README section "Cold start").

By default the attribute examples do not move the output vectors (``update_context=False``): the
item vectors come out bit-identical to a run without attributes, so warm-item quality cannot
regress, and the attribute vectors are fitted into the space the items define. ``True`` lets the
attributes shape that space too (full joint training): on data_samples it raised cold HR@10
(0.18 -> 0.23 with cosine to learned vectors) but cost warm HR@10 0.05, so it is an option.
Attribute vectors learn at ``lr_scale`` (4) times the items' rate: they see only ``share`` of the
examples, and 4x at share 0.25 matched share 1.0 at a third of the cost.

Hot tokens (a category carried by a tenth of the catalogue) collect hundreds of gradient
contributions per batch, all computed from the same stale vector; their summed update is capped
at ``row_cap`` contributions' worth, like the trainer's ``row_update_cap`` for popular negatives.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from recommender.core.attributes import AttributeVectors
from recommender.core.catalog import AttributeSchema, column_of
from recommender.core.errors import ConfigError
from recommender.train.sgns import _flat_rows, scatter_add, sgns_loss_grad

MODES = ("mean", "each")


@dataclass(frozen=True)
class AttributeConfig:
    """How attribute vectors are trained alongside the items."""

    mode: str = "mean"  # "mean" (EGES-style aggregate) | "each" (Meta-Prod2Vec-style)
    share: float = 0.25  # share of each batch's example groups replayed with attributes
    update_context: bool = False  # attribute examples also move the output (context) vectors
    row_cap: float = 16.0  # max contributions' worth of update per token and batch; 0 = off
    lr_scale: float = 4.0  # learning rate of the attribute vectors relative to the items'

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"attribute mode must be one of {MODES}, not {self.mode!r}")
        if not 0 < self.share <= 1:
            raise ConfigError(f"attribute share must be in (0, 1], got {self.share!r}")
        if not self.lr_scale > 0:
            raise ConfigError(f"attribute lr_scale must be > 0, got {self.lr_scale!r}")
        if self.row_cap < 0:
            raise ConfigError(f"attribute row_cap must be >= 0, got {self.row_cap!r}")


@dataclass
class CatalogAttributes:
    """The training input: every catalogue item's tokens and the schema that made them."""

    schema: AttributeSchema
    item_ids: list[str]
    item_tokens: list[list[str]]

    @classmethod
    def from_catalog(cls, catalog, specs, separator="|", buckets=5) -> CatalogAttributes:
        schema = AttributeSchema.fit(catalog, tuple(specs), separator, buckets)
        return cls(schema, list(catalog.item_ids), schema.item_tokens(catalog))


class AttributeTrainer:
    """Holds the token vectors and applies the attribute half of each minibatch."""

    def __init__(self, attributes: CatalogAttributes, item_ids: list[str], dim: int,
                 config: AttributeConfig = AttributeConfig(), seed: int = 1):
        self.config, self.seed, self.attributes = config, seed, attributes
        by_item = dict(zip(attributes.item_ids, attributes.item_tokens))
        owned = [list(dict.fromkeys(by_item.get(i, ()))) for i in item_ids]
        counts = Counter(t for tokens in owned for t in tokens)
        # Tokens in column order, then by value: stable across runs.
        self.tokens = sorted(counts, key=lambda t: (column_of(t), t))
        self.counts = np.array([counts[t] for t in self.tokens], np.int64)
        row = {t: k for k, t in enumerate(self.tokens)}
        lens, ncols, indices, weights = [], [], [], []
        for tokens in owned:
            cols = [column_of(t) for t in tokens]
            per_col = Counter(cols)
            lens.append(len(tokens))
            ncols.append(len(per_col))
            indices += [row[t] for t in tokens]
            weights += [1.0 / (len(per_col) * per_col[c]) for c in cols]
        self.lens = np.array(lens, np.int64)
        self.ncols = np.array(ncols, np.float32)
        self.indptr = np.concatenate([[0], np.cumsum(self.lens)])
        self.indices = np.array(indices, np.int64)
        self.weights = np.array(weights, np.float32)
        rng = np.random.default_rng([seed, 7919])
        self.vectors = ((rng.random((len(self.tokens), dim), dtype=np.float32) - 0.5) / dim)
        self.covered = int((self.lens > 0).sum())  # trained items with at least one token
        self._step = 0

    def step(self, w_in: np.ndarray, w_out: np.ndarray, batch) -> float:
        """Replay a share of ``batch``'s groups with attribute inputs; return their loss."""
        if not len(self.tokens):
            return 0.0
        g, b, _ = batch.neg_weight.shape
        d = w_in.shape[1]
        self._step += 1
        rng = np.random.default_rng([self.seed, 104729, self._step])
        sel = np.flatnonzero(rng.random(g) < self.config.share)
        if not len(sel):
            return 0.0
        if batch.centre_of_pair is None:  # skip-gram: the input item of each example
            owner = batch.inp.reshape(g, b)[sel].ravel()
        else:  # CBOW: the first context item of each centre
            first = np.searchsorted(batch.centre_of_pair, np.arange(g * b))
            owner = batch.inp[np.minimum(first, len(batch.inp) - 1)].reshape(g, b)[sel].ravel()
        m = len(owner)
        lens = self.lens[owner]
        if self.config.mode == "each":  # one random value of the item
            has = lens > 0
            ex = np.flatnonzero(has)
            pick = self.indptr[owner[has]] + (rng.random(len(ex)) * lens[has]).astype(np.int64)
            rows, wts, grad_w = self.indices[pick], np.ones(len(ex), np.float32), None
            lens = has.astype(np.int64)
        else:  # the weighted mean of all its values
            ex = np.repeat(np.arange(m), lens)
            ends = np.cumsum(lens)
            pos = (np.arange(len(ex)) - np.repeat(ends - lens, lens)
                   + np.repeat(self.indptr[owner], lens))
            rows, wts = self.indices[pos], self.weights[pos]
            # Each value takes the mean's full gradient shared within its column (word2vec's
            # CBOW convention), not 1/columns of it: a column's values learn at the item's pace.
            grad_w = wts * np.repeat(self.ncols[owner], lens).astype(np.float32)
        has = lens > 0
        h = np.zeros((m, d), np.float32)
        if len(rows):
            gathered = self.vectors[rows] * wts[:, None]
            starts = (np.cumsum(lens) - lens)[has]
            h[has] = np.add.reduceat(gathered, starts, axis=0)
        mask = has.reshape(len(sel), b).astype(np.float32)
        pos_w = batch.pos_weight[sel] * mask
        neg_w = batch.neg_weight[sel] * mask[..., None]
        out = batch.out.reshape(g, b)[sel].ravel()
        neg = batch.neg[sel]
        u_pos = np.take(w_out, out, axis=0).reshape(len(sel), b, d)
        u_neg = np.take(w_out, neg, axis=0)
        neg_scale = batch.neg_scale[sel] if batch.neg_scale is not None else None
        loss, grad_h, grad_pos, _ = sgns_loss_grad(
            h.reshape(len(sel), b, d), u_pos, u_neg, pos_w, neg_w, -batch.lr, neg_scale,
            batch.max_exp)
        if len(rows):
            scale = (grad_w if grad_w is not None else wts) * np.float32(self.config.lr_scale)
            if self.config.row_cap:
                load = np.bincount(rows, minlength=len(self.tokens))[rows]
                scale = scale * np.minimum(1.0, self.config.row_cap / load).astype(np.float32)
            values = grad_h.reshape(m, d)[ex] * scale[:, None]
            scatter_add(self.vectors, _flat_rows(rows, d), values)
        if self.config.update_context:
            scatter_add(w_out, _flat_rows(np.concatenate([out, neg.ravel()]), d),
                        grad_pos.base)
        return loss

    def result(self, catalogue: bool = True) -> AttributeVectors:
        """The trained vectors as a contract object (with the catalogue's item tokens)."""
        info = {"training": asdict(self.config), "trained_items_with_attributes": self.covered}
        return AttributeVectors(
            self.attributes.schema, self.tokens, self.counts, self.vectors, info,
            self.attributes.item_ids if catalogue else None,
            self.attributes.item_tokens if catalogue else None)



def attribute_trainer(attributes, item_ids, dim, seed, manifest) -> AttributeTrainer | None:
    """The trainer's hook: ``attributes`` is None or ``(CatalogAttributes, AttributeConfig)``."""
    if attributes is None:
        return None
    catalog, config = attributes
    side = AttributeTrainer(catalog, item_ids, dim, config, seed)
    manifest["attributes_training"] = {**asdict(config), "values": len(side.tokens),
                                       "trained_items_with_attributes": side.covered}
    return side
