"""Attribute-value vectors learned jointly with the item vectors (cold start).

Every catalogue attribute value (token ``"brand=acme"``, ``"price=q3"``; see
:mod:`recommender.core.catalog`) gets an input vector in the same space as the item input vectors.
The trainer hands each minibatch to :meth:`AttributeTrainer.step` after its own update; a share of
the batches is replayed with the *input item replaced by its attributes*: the
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
Attribute vectors learn at ``lr_scale`` (5) times the items' rate: they see only ``share`` (0.2)
of the examples. 4x at share 0.25 matched share 1.0 at a third of the cost; 5x at 0.2 keeps the
product at 1 and matched 0.25 on cold items (HR@10 against popular-within-the-same-value, medians
of 3 draws: 1.54x / 1.59x / 1.14x on data_samples / dense / sparse, against 1.54x / 1.59x / 1.12x),
while training with attributes ran at 0.83x / 0.91x / 0.87x the words/s without them, against
0.79x / 0.89x / 0.85x (medians of 7 alternating runs, ``benchmarks/bench_coldstart.py``). At 0.15
cold items lost (1.35x on data_samples, 1.00x on sparse).

Hot tokens (a category carried by a tenth of the catalogue) collect hundreds of gradient
contributions per batch, all computed from the same stale vector; their summed update is capped
at ``row_cap`` contributions' worth, like the trainer's ``row_update_cap`` for popular negatives.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from recommender.core.artifacts import save_npy, write_json
from recommender.core.attributes import AttributeVectors
from recommender.core.catalog import AttributeSchema, column_of
from recommender.core.errors import ArtifactError, ConfigError
from recommender.train.sgns import _CLIP, _flat_rows, scatter_add, sgns_loss_grad

MODES = ("mean", "each")
MAX_TOKENS = 32  # tokens per item used in training (a longer tag list is cut)
# A batch's token update is one dense [tokens, items] x [items, d] product up to this many
# tokens (genres, years, categories: measured 2x cheaper than a scatter), else a scatter.
DENSE_TOKENS = 64
# Examples pooled per replay: the batches drawn for replay are replayed together until they
# hold this many (a small corpus has batches of 256-512; numpy's per-call cost dominated).
MERGE_EXAMPLES = 2048
_MASK64 = (1 << 64) - 1


@dataclass
class _Prepared:
    """The integer half of one batch's attribute replay (made in the producer thread)."""

    rows: np.ndarray  # [items, width] token rows per distinct input item (pad: spare zero row)
    weights: np.ndarray  # [items, width] weights of the mean
    pos_weight: np.ndarray
    neg_weight: np.ndarray
    out: np.ndarray
    neg: np.ndarray
    neg_scale: np.ndarray | None
    context: np.ndarray | None  # scatter indices into the context vectors (update_context)
    inv: np.ndarray  # [m] example -> distinct input item
    inv_flat: np.ndarray  # scatter indices of inv
    spread: np.ndarray | None  # [tokens, items] gradient factor of each (token, item); or,
    # with many tokens, None and the per-use arrays below
    use_item: np.ndarray | None  # [u] item of each (item, known token) use
    use_grad: np.ndarray | None  # [u] gradient factor of each use (lr scale, row cap included)
    use_flat: np.ndarray | None  # scatter indices of each use's token row


@dataclass(frozen=True)
class AttributeConfig:
    """How attribute vectors are trained alongside the items."""

    mode: str = "mean"  # "mean" (EGES-style aggregate) | "each" (Meta-Prod2Vec-style)
    share: float = 0.2  # share of the batches replayed with attributes
    update_context: bool = False  # attribute examples also move the output (context) vectors
    row_cap: float = 16.0  # max contributions' worth of update per token and batch; 0 = off
    lr_scale: float = 5.0  # learning rate of the attribute vectors relative to the items'
    validation: float = 0.1  # share of items kept out of the replay to choose cold scoring; 0 off

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"attribute mode must be one of {MODES}, not {self.mode!r}")
        if not 0 < self.share <= 1:
            raise ConfigError(f"attribute share must be in (0, 1], got {self.share!r}")
        if not self.lr_scale > 0:
            raise ConfigError(f"attribute lr_scale must be > 0, got {self.lr_scale!r}")
        if not 0 <= self.validation < 1:
            raise ConfigError(f"attribute validation share must be in [0, 1), got "
                              f"{self.validation!r}")
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


def _uniform(seed: int, step: int) -> float:
    """A uniform [0, 1) number from ``(seed, step)`` (splitmix64): which batches are replayed,
    the same for any thread count and on resume, without a Generator per batch."""
    z = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + 0x632BE59BD9B4E019) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return ((z ^ (z >> 31)) >> 11) / float(1 << 53)


def _distinct(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True, return_counts=True)`` for integers in
    ``[0, size)``: a count table instead of a sort while ``size`` is small next to ``values``."""
    if size > 4 * len(values):
        return np.unique(values, return_inverse=True, return_counts=True)
    counts = np.bincount(values, minlength=size)
    present = counts > 0
    rank = np.cumsum(present) - 1
    return np.flatnonzero(present), rank[values], counts[present]


@functools.cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it the product runs on BLAS's own threads
        return None
    return ThreadpoolController()


def one_blas_thread():
    """A context in which BLAS runs on one thread: the replay's token update is a small GEMM
    (:data:`DENSE_TOKENS`), and a threaded GEMM that size waits on its threads. Setting the
    limit costs about 80 us (threadpoolctl), as much as the product itself, so the trainer holds
    it for a whole run with attributes rather than per product. The item trainer's own products
    are unaffected (words/s without attributes with it held: 1.03x on the dense log, 0.99x on the
    sparse one, medians of 5)."""
    controller = _blas_controller()
    return (contextlib.nullcontext() if controller is None
            else controller.limit(limits=1, user_api="blas"))


def input_gradient(v, u_pos, u_neg, pos_weight, neg_weight, lr, max_exp=None):
    """``-lr * dL/dv`` of :func:`recommender.train.sgns.sgns_loss_grad` alone: the attribute
    replay updates only its input vectors, so the loss and the output gradients (a third of the
    float work) are skipped."""
    s_pos = np.einsum("gbd,gbd->gb", v, u_pos)
    s_neg = np.matmul(v, u_neg.transpose(0, 2, 1))
    # Scores are clipped to +-_CLIP on both sides: exp of either sign feeds a denominator, and
    # an overflow to inf (which gives the right 0) would warn.
    d_pos = np.exp(np.clip(s_pos, -_CLIP, _CLIP))  # lr * sigmoid(-s) = lr / (1 + exp(s))
    d_pos += 1
    np.divide(lr * pos_weight, d_pos, out=d_pos)
    d_neg = np.clip(s_neg, -_CLIP, _CLIP)
    np.negative(d_neg, out=d_neg)
    np.exp(d_neg, out=d_neg)  # -lr * sigmoid(s) = -lr / (1 + exp(-s))
    d_neg += 1
    np.divide(neg_weight, d_neg, out=d_neg)
    d_neg *= -lr
    if max_exp:
        d_pos[s_pos <= -max_exp] = 0
        np.putmask(d_neg, s_neg >= max_exp, 0)
    grad = np.matmul(d_neg, u_neg)
    grad += d_pos[..., None] * u_pos
    return grad


class AttributeTrainer:
    """Holds the token vectors and applies the attribute half of each minibatch."""

    def __init__(self, attributes: CatalogAttributes, item_ids: list[str], dim: int,
                 config: AttributeConfig = AttributeConfig(), seed: int = 1,
                 item_counts: np.ndarray | None = None):
        self.config, self.seed, self.attributes = config, seed, attributes
        by_item = dict(zip(attributes.item_ids, attributes.item_tokens))
        owned = [list(dict.fromkeys(by_item.get(i, ()))) for i in item_ids]
        self.item_token_lists = owned  # every token (the rows below keep MAX_TOKENS)
        counts = Counter(t for tokens in owned for t in tokens)
        # Tokens in column order, then by value: stable across runs.
        self.tokens = sorted(counts, key=lambda t: (column_of(t), t))
        self.counts = np.array([counts[t] for t in self.tokens], np.int64)
        row = {t: k for k, t in enumerate(self.tokens)}
        # Each trained item's tokens as one padded row (the pad points at a spare zero vector):
        # a batch's inputs are then one gather and one batched matmul, its update one scatter.
        width = max(1, min(MAX_TOKENS, max((len(t) for t in owned), default=1)))
        pad = len(self.tokens)
        self.item_rows = np.full((len(owned), width), pad, np.int64)
        self.item_weights = np.zeros((len(owned), width), np.float32)
        self.item_grad = np.zeros((len(owned), width), np.float32)
        for i, tokens in enumerate(owned):
            tokens = tokens[:width]
            cols = [column_of(t) for t in tokens]
            per_col = Counter(cols)
            self.item_rows[i, : len(tokens)] = [row[t] for t in tokens]
            w = [1.0 / (len(per_col) * per_col[c]) for c in cols]
            self.item_weights[i, : len(tokens)] = w
            # Each value takes the mean's gradient shared within its column only (word2vec's
            # CBOW convention gives every input the full gradient), not 1/columns of it.
            self.item_grad[i, : len(tokens)] = [x * len(per_col) for x in w]
        self.lens = (self.item_rows != pad).sum(axis=1)
        rng = np.random.default_rng([seed, 7919])
        self.vectors = ((rng.random((pad + 1, dim), dtype=np.float32) - 0.5) / dim)
        self.vectors[pad] = 0
        self.covered = int((self.lens > 0).sum())  # trained items with at least one token
        # Pseudo-cold items: left out of the replay, they choose how cold items are scored
        # (recommender/train/cold_choice.py).
        self.pseudo = np.zeros(len(owned), bool)
        with_tokens = np.flatnonzero(self.lens > 0)
        n_pseudo = int(round(config.validation * len(with_tokens)))
        if n_pseudo:
            pick = np.random.default_rng([seed, 15485863]).choice(with_tokens, n_pseudo,
                                                                  replace=False)
            self.pseudo[pick] = True
        self.cold_choice: dict | None = None
        self.recent: np.ndarray | None = None  # recent engagements, if the choice uses them
        # Examples of pseudo-cold items and of items without a known value train nothing.
        self.item_mask = ((self.lens > 0) & ~self.pseudo).astype(np.float32)
        # Each token's share of the input examples (items weighted by their engagements), for
        # the expected per-batch load the row cap divides by.
        weight = (np.ones(len(owned)) if item_counts is None
                  else np.asarray(item_counts, np.float64))
        weight = weight / max(weight.sum(), 1e-12)
        self.token_share = np.bincount(self.item_rows.ravel(), np.repeat(weight, width),
                                       pad + 1)[:pad]
        self._grad_cache: dict = {}
        self._step = 0

    def prepared(self, batches):
        """Attach the attribute replay's integer work to the batches as they are made: wrapped
        around the trainer's batch generator, this runs in the producer thread, ahead of the
        float math.

        A share of the batches is drawn for replay. Their examples are pooled until there are
        :data:`MERGE_EXAMPLES` (or the chunk ends) and replayed together with the batch at hand:
        small batches (a small corpus) would otherwise pay numpy's per-call cost per replay.
        Pools never cross a chunk end, so a run resumed after an epoch replays the same pools.
        """
        pending: list = []
        held = None  # the latest batch, yielded once we know whether a chunk ends after it
        for batch, done in batches:
            if batch is None:
                if held is not None:
                    held.attributes = self._build(pending)
                    pending = []
                    yield held, 0
                    held = None
                yield batch, done
                continue
            if held is not None:
                held.attributes = None
                yield held, 0
                held = None
            if self._drawn():
                pending.append(batch)
            if pending and sum(x.neg_weight.shape[0] * x.neg_weight.shape[1]
                               for x in pending) >= MERGE_EXAMPLES:
                batch.attributes = self._build(pending)
                pending = []
                yield batch, 0
            else:
                held = batch
        if held is not None:
            held.attributes = self._build(pending)
            yield held, 0

    def _drawn(self) -> bool:
        """Whether the next batch is replayed (a ``share`` of them, by a hash of the step)."""
        self._step += 1
        return bool(len(self.tokens)) and _uniform(self.seed, self._step) < self.config.share

    def prepare(self, batch):
        """:meth:`_build` for one batch if it is drawn for replay, else None."""
        return self._build([batch]) if self._drawn() else None

    def _build(self, batches):
        """The replay of the examples of ``batches``: token rows, weights, update indices."""
        if not batches:
            return None
        owners = []
        for batch in batches:
            g, b, _ = batch.neg_weight.shape
            if batch.centre_of_pair is None:  # skip-gram: the input item of each example
                owners.append(batch.inp)
            else:  # CBOW: the first context item of each centre
                first = np.searchsorted(batch.centre_of_pair, np.arange(g * b))
                owners.append(batch.inp[np.minimum(first, len(batch.inp) - 1)])
        one = batches[0].neg_weight.shape  # a whole batch: the unit of the row cap
        if len(batches) == 1:
            batch = batches[0]
            owner, out, neg = owners[0], batch.out, batch.neg
            pos_weight, neg_weight, neg_scale = batch.pos_weight, batch.neg_weight, batch.neg_scale
        else:
            owner = np.concatenate(owners)
            out = np.concatenate([x.out for x in batches])
            neg = np.concatenate([x.neg for x in batches])
            pos_weight = np.concatenate([x.pos_weight for x in batches])
            neg_weight = np.concatenate([x.neg_weight for x in batches])
            neg_scale = (np.concatenate([x.neg_scale for x in batches])
                         if batches[0].neg_scale is not None else None)
        g, b, _ = neg_weight.shape
        d = self.vectors.shape[1]
        # Examples of one batch share few distinct input items (an item is the input of every
        # pair in its window): compose and update per distinct item, then expand.
        items, inv, uses = _distinct(owner, len(self.item_rows))
        if self.config.mode == "each":  # one random value of the item
            rng = np.random.default_rng([self.seed, 104729, self._step])
            lens = self.lens[items]
            col = (rng.random(len(items)) * np.maximum(lens, 1)).astype(np.int64)
            rows = self.item_rows[items, col][:, None]
            weights = (lens > 0).astype(np.float32)[:, None]
            grad = weights * np.float32(self.config.lr_scale)
            if self.config.row_cap:  # contributions per token: one per example using it
                load = np.bincount(rows.ravel(), uses, len(self.tokens) + 1)[rows]
                grad = grad * np.minimum(1.0, self.config.row_cap / np.maximum(load, 1)).astype(
                    np.float32)
        else:  # the weighted mean of all its values
            rows, weights, grad = (self.item_rows[items], self.item_weights[items],
                                   self._scaled_grad(one[0] * one[1])[items])
        mask = self.item_mask[owner].reshape(g, b)
        context = (_flat_rows(np.concatenate([out, neg.ravel()]), d)
                   if self.config.update_context else None)
        # Updates are summed per distinct item, then per (item, known token) use: the pad
        # slots of the padded token rows are dropped before the update.
        flat = rows.ravel()
        use = np.flatnonzero(flat != len(self.tokens))
        if not len(use):  # no item of the batch has a known attribute value
            return None
        use_item, use_grad = use // rows.shape[1], grad.ravel()[use]
        common = (rows, weights, pos_weight * mask, neg_weight * mask[..., None], out, neg,
                  neg_scale, context, inv, _flat_rows(inv, d))
        if len(self.tokens) <= DENSE_TOKENS:  # one small product per batch
            spread = np.zeros((len(self.tokens), len(items)), np.float32)
            spread[flat[use], use_item] = use_grad  # an item holds each token once
            return _Prepared(*common, spread, None, None, None)
        return _Prepared(*common, None, use_item, use_grad, _flat_rows(flat[use], d))

    def _scaled_grad(self, examples: int) -> np.ndarray:
        """Per (item, token slot) update factor: ``lr_scale`` times the mean's share, capped
        for hot tokens at ``row_cap`` contributions' worth of the expected batch load (a token's
        share of the input examples times ``examples``)."""
        if examples not in self._grad_cache:
            grad = self.item_grad * np.float32(self.config.lr_scale)
            if self.config.row_cap:
                load = examples * self.token_share
                cap = np.minimum(1.0, self.config.row_cap / np.maximum(load, 1.0))
                grad = grad * np.append(cap, 1.0).astype(np.float32)[self.item_rows]
            self._grad_cache = {examples: grad}  # one batch size (and the last, shorter one)
        return self._grad_cache[examples]

    def step(self, w_in: np.ndarray, w_out: np.ndarray, batch) -> None:
        """Replay ``batch`` with attribute inputs if it was drawn (in place)."""
        p = getattr(batch, "attributes", None)
        if p is None:
            p = self.prepare(batch) if not hasattr(batch, "attributes") else None
            if p is None:
                return
        groups, b = p.neg_weight.shape[:2]
        d = w_in.shape[1]
        gathered = np.take(self.vectors, p.rows, axis=0)  # [items, width, d]
        h = np.einsum("iw,iwd->id", p.weights, gathered)
        h = np.take(h, p.inv, axis=0).reshape(groups, b, d)
        u_pos = np.take(w_out, p.out, axis=0).reshape(groups, b, d)
        u_neg = np.take(w_out, p.neg, axis=0)
        if p.context is None:  # the input side only: no loss, no output gradients
            grad_h = input_gradient(h, u_pos, u_neg, p.pos_weight, p.neg_weight, batch.lr,
                                    batch.max_exp)
        else:
            _, grad_h, grad_pos, _ = sgns_loss_grad(h, u_pos, u_neg, p.pos_weight, p.neg_weight,
                                                    -batch.lr, p.neg_scale, batch.max_exp)
            scatter_add(w_out, p.context, grad_pos.base)
        per_item = np.zeros((len(p.rows), d), np.float32)
        scatter_add(per_item, p.inv_flat, grad_h)
        if p.spread is not None:  # the trainer holds one_blas_thread
            self.vectors[:-1] += p.spread @ per_item
        else:
            per_use = per_item[p.use_item]
            per_use *= p.use_grad[:, None]
            scatter_add(self.vectors, p.use_flat, per_use)

    def composed(self) -> tuple[np.ndarray, np.ndarray]:
        """Attribute vectors float32 [V, d] of the trained items (zeros without any known
        value) and the mask of those with one -- :meth:`AttributeVectors.compose`, batched."""
        vecs = np.empty((len(self.item_rows), self.vectors.shape[1]), np.float32)
        for s in range(0, len(vecs), 4096):
            vecs[s:s + 4096] = np.einsum("iw,iwd->id", self.item_weights[s:s + 4096],
                                         self.vectors[self.item_rows[s:s + 4096]])
        return vecs, self.lens > 0

    def choose_cold(self, chunks, sessions: int, w_in: np.ndarray, w_out: np.ndarray,
                    k: int = 10, times=None) -> dict:
        """Choose the cold scoring on the pseudo-cold items' next-item pairs (see
        :mod:`recommender.train.cold_choice`); kept in :attr:`cold_choice`. ``times``: each
        session's start in corpus order (None: corpus order is time order, no recency); a
        choice with recent engagements keeps them in :attr:`recent`."""
        from recommender.train import cold_choice

        own, has = self.composed()
        self.recent = None
        if not self.pseudo.any():
            self.cold_choice = {**cold_choice.DEFAULT,
                                "chosen_by": "default (no validation items)"}
            return self.cold_choice
        limit = max(int(cold_choice.MAX_SCORES // max(len(own), 1)), cold_choice.MIN_PAIRS)
        rng = np.random.default_rng([self.seed, 32452843])
        v = cold_choice.validation_pairs(chunks, self.pseudo, sessions, min(limit, 5000), rng,
                                         times=times, half_lives=cold_choice.HALF_LIVES)
        recency, evidence = cold_choice.popularity_source(v)
        space = np.where(has[:, None], own, w_in)
        columns = [spec.name for spec in self.attributes.schema.specs]
        choice = cold_choice.choose(own[v.queries], v.queries, v.targets, v.early[recency],
                                    space, w_out, k, self.item_token_lists, columns,
                                    candidates=v.early[0.0] > 0)
        choice["validation"]["items"] = int(self.pseudo.sum())
        if evidence:
            choice["validation"]["popularity_source"] = evidence
        if recency and choice["popularity"] > 0:  # a weight 0 reads no engagements
            choice["recency"], choice["half_life"] = recency, v.half_life[recency]
            self.recent = v.final[recency]
        self.cold_choice = choice
        return choice

    def checkpoint_saver(self, directory: Path):
        """An epoch callback that saves the vectors and the step count beside the trainer's
        checkpoint (``attribute_vectors-<epoch>.npy``, ``attribute_state.json``)."""
        def save(epoch, loss, model):
            save_npy(directory / f"attribute_vectors-{epoch}.npy", self.vectors)
            write_json(directory / "attribute_state.json",
                       {"format_version": 1, "epoch": epoch, "step": self._step,
                        "tokens": len(self.tokens)})
        return save

    def restore(self, directory: Path, epoch: int) -> None:
        """Continue from the state saved after ``epoch`` (see :meth:`checkpoint_saver`)."""
        try:
            state = json.loads((directory / "attribute_state.json").read_text("utf-8"))
            vectors = np.load(directory / f"attribute_vectors-{epoch}.npy", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ArtifactError(f"the checkpoint in {directory} has no attribute vectors for "
                                f"epoch {epoch} ({e}); rerun without --resume") from None
        if state.get("epoch") != epoch or vectors.shape != self.vectors.shape:
            raise ArtifactError(f"the attribute vectors in {directory} belong to another run or "
                                "catalogue; rerun without --resume")
        self.vectors[...] = vectors
        self._step = int(state["step"])

    def result(self, catalogue: bool = True) -> AttributeVectors:
        """The trained vectors as a contract object (with the catalogue's item tokens)."""
        info = {"training": asdict(self.config), "trained_items_with_attributes": self.covered,
                "cold_scoring": self.cold_choice}
        return AttributeVectors(
            self.attributes.schema, self.tokens, self.counts, self.vectors[:-1].copy(), info,
            self.attributes.item_ids if catalogue else None,
            self.attributes.item_tokens if catalogue else None, self.recent)



def attribute_trainer(attributes, item_ids, dim, seed, manifest,
                      checkpoint=None, counts=None) -> AttributeTrainer | None:
    """The trainer's hook: ``attributes`` is None or ``(CatalogAttributes, AttributeConfig)``;
    ``checkpoint`` is ``(checkpoint dir, epochs done)`` to resume from."""
    if attributes is None:
        return None
    catalog, config = attributes
    side = AttributeTrainer(catalog, item_ids, dim, config, seed, counts)
    if checkpoint is not None and checkpoint[1] > 0:
        side.restore(*checkpoint)
    manifest["attributes_training"] = {**asdict(config), "values": len(side.tokens),
                                       "trained_items_with_attributes": side.covered}
    return side
