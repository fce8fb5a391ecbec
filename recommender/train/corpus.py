"""The training corpus: vocabulary, tokenised session chunks, subsampling, pairs and minibatches.

Everything here is integer work that does not depend on the weights, so it can run one batch ahead
of the float math in another thread. All randomness of a chunk comes from a generator seeded with
``(seed, epoch, chunk number)``: results do not depend on threads, and an epoch can be replayed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recommender.core.errors import TrainingError
from recommender.core.sessions import iter_session_batches, start_seconds
from recommender.train.sgns import Batch, _flat_rows, _lanes

CHUNK_SESSIONS = 16_384  # sessions per chunk: one RNG stream and one tokenising call each
PREFETCH_DEPTH = 4  # batches queued ahead of the float math
# Scatter-index buffers are recycled (fresh multi-MB arrays per batch cost page faults): a batch
# uses at most 3, and with the prefetch thread at most PREFETCH_DEPTH + 2 batches are alive at
# once (one being prepared, the queue, one being applied); one more for safety.
ALIVE_PREFETCHED = PREFETCH_DEPTH + 3
# --window 0 (whole session) context limit: the items on either side of a centre. Sessions of up
# to WHOLE_SESSION_LIMIT + 1 items are used whole; in longer ones each item sees this many on
# each side, so the pairs of a session grow linearly with its length instead of quadratically
# (a 200k-item session would otherwise make 4e10 pairs).
WHOLE_SESSION_LIMIT = 1000
# Skip-gram pairs prepared (and dealt round-robin to batches) at once: a chunk with more pairs is
# dealt in parts of consecutive centres. Bounds the producer's memory (~40 bytes a pair).
DEAL_PAIRS = 1 << 21
# A catalogue whose table of scatter indices (vocabulary x d/2 int64) fits in this many bytes
# copies each row's indices from the table instead of computing them. Measured inside the
# training loop (one process, batches of 1,280): 0.94x the time on 1,628 items (0.4 MB table),
# 0.97x on 16k (4 MB), but 1.18x on 47k (12 MB), where the table crowds the weights out of the
# caches (issue 9).
FLAT_TABLE_BYTES = 2 << 20
log = logging.getLogger(__name__)


@dataclass
class Vocab:
    """Item ids in row order (count descending, then id) and their corpus counts."""

    item_ids: list[str]
    counts: np.ndarray  # int64 [V]

    def __len__(self) -> int:
        return len(self.item_ids)

    def digest(self) -> str:
        """sha256 of ids and counts, to check a checkpoint belongs to the same corpus."""
        h = hashlib.sha256()
        for item, count in zip(self.item_ids, self.counts.tolist()):
            h.update(f"{item}\t{count}\n".encode())
        return "sha256:" + h.hexdigest()


class _IdCounts:
    """Summed counts of item ids over chunks, kept compact: every chunk's distinct ids are merged
    in Arrow's C++ kernels once they outnumber ``MERGE_IDS`` (a Python ``Counter`` and ``sorted``
    over every chunk's distinct ids took about a second of a 2M-token corpus; issue 9)."""

    MERGE_IDS = 1 << 21

    def __init__(self) -> None:
        self.ids: list[pa.Array] = []
        self.counts: list[np.ndarray] = []
        self.pending = 0

    def add(self, ids: pa.Array, counts: np.ndarray) -> None:
        if ids.type != pa.string():  # e.g. large_string from another writer: one type to concat
            ids = ids.cast(pa.string())
        self.ids.append(ids)
        self.counts.append(counts)
        self.pending += len(ids)
        if self.pending > self.MERGE_IDS:
            ids, counts = self._merged()
            self.ids, self.counts = [ids], [counts]
            self.pending = len(ids)

    def _merged(self) -> tuple[pa.Array, np.ndarray]:
        """(distinct ids, int64 counts) over the chunks so far."""
        ids = pa.concat_arrays(self.ids) if self.ids else pa.array([], pa.string())
        counts = np.concatenate(self.counts) if self.counts else np.zeros(0, np.int64)
        if len(self.ids) > 1:  # the same id may come from several chunks: sum its counts
            # A dictionary encoding and a bincount rather than ``Table.group_by``, whose first
            # use imports Arrow's query engine (acero, dataset): ~20 ms of every training run.
            # bincount sums in float64, exact for counts below 2**53.
            encoded = pc.dictionary_encode(ids)
            codes = encoded.indices.to_numpy(zero_copy_only=False)
            counts = np.bincount(codes, weights=counts, minlength=len(encoded.dictionary))
            ids = encoded.dictionary
        return ids, counts.astype(np.int64, copy=False)

    def vocab(self, min_count: int) -> Vocab:
        """Ids counted at least ``min_count`` times, by count descending, then id (Arrow orders
        strings by their UTF-8 bytes, which is Python's code-point order).

        Filtered and ordered in numpy: Arrow compute calls with a Python scalar, or
        ``pa.array`` of a numpy array, import dateutil and numpy.ma on first use (16 ms)."""
        ids, counts = self._merged()
        by_id = pc.sort_indices(ids).to_numpy(zero_copy_only=False)
        order = by_id[np.argsort(-counts[by_id], kind="stable")]
        order = order[counts[order] >= min_count]
        if not len(order):
            raise TrainingError(
                f"no item occurs at least min_count={min_count} times; lower --min-count "
                "or give more sessions"
            )
        order = np.ascontiguousarray(order, dtype=np.int64)
        rows = pa.Array.from_buffers(pa.int64(), len(order), [None, pa.py_buffer(order)])
        return Vocab(ids.take(rows).to_pylist(), counts[order])


def _distinct(ids: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """``(distinct ids, their counts, code of every id)`` of an Arrow string array (nulls: -1)."""
    encoded = pc.dictionary_encode(ids)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    counts = np.bincount(codes[codes >= 0], minlength=len(encoded.dictionary))
    return encoded.dictionary, counts, codes


class Corpus:
    """Sessions as chunks of int32 rows: ``tokens`` and per-session ``lengths``.

    Built from a SESSIONS directory (streamed anew each epoch) or from in-memory sequences of
    item-id strings (tokenised once). Items below ``min_count`` are dropped before windowing,
    like gensim. ``raw_tokens`` counts the tokens kept, the unit of the learning-rate schedule.
    """

    def __init__(self, source, min_count: int = 1):
        self.directory = None
        counted = _IdCounts()
        if isinstance(source, (str, Path)):
            self.directory = Path(source)
            sessions = 0
            for batch in iter_session_batches(self.directory, ("items",), CHUNK_SESSIONS):
                col = batch.column(0)
                sessions += len(col)
                counted.add(*_distinct(pc.list_flatten(col))[:2])
            self.vocab = counted.vocab(min_count)
            # Streamed chunks map their distinct ids through a dict every epoch: on 200k items
            # Arrow's index_in rebuilds its hash set per chunk and measured 10-30% slower.
            self._index = {item: i for i, item in enumerate(self.vocab.item_ids)}
            self.sessions = sessions
            self._chunks = None
        else:
            # In-memory sequences, a chunk at a time: one Arrow array of its ids, hashed in C++ (a
            # Python Counter and dict lookup per token cost more than an epoch of a small corpus).
            seqs = source if isinstance(source, list) else list(source)
            parts = []
            for start in range(0, len(seqs), CHUNK_SESSIONS):
                part = seqs[start:start + CHUNK_SESSIONS]
                flat = list(chain.from_iterable(part))
                try:
                    chunk_ids = pa.array(flat, type=pa.string())
                except (pa.ArrowTypeError, pa.ArrowInvalid):  # not all str: ids are str(item)
                    chunk_ids = pa.array([str(item) for item in flat], type=pa.string())
                del flat
                if chunk_ids.null_count:
                    raise TrainingError(
                        f"{chunk_ids.null_count} item id(s) are None in sessions "
                        f"{start}..{start + len(part) - 1}: remove them or give every item an id")
                distinct, n, codes = _distinct(chunk_ids)
                counted.add(distinct, n)
                parts.append((codes, distinct,
                              np.fromiter(map(len, part), dtype=np.int64, count=len(part))))
            self.vocab = counted.vocab(min_count)
            ids = pa.array(self.vocab.item_ids, pa.string())
            # Distinct ids to vocabulary rows in C++, once per chunk (no dict of the vocabulary).
            self._chunks = [
                self._tokens(codes, pc.index_in(distinct, value_set=ids).fill_null(-1)
                             .to_numpy(zero_copy_only=False), lengths)
                for codes, distinct, lengths in parts]
            self.sessions = len(seqs)
        self.raw_tokens = int(self.vocab.counts.sum())

    @staticmethod
    def _tokens(codes: np.ndarray, rows: np.ndarray, lengths: np.ndarray):
        """``(tokens int32, lengths int64)`` of a chunk given as codes into its distinct ids
        (-1 for a null id) and ``rows``, the vocabulary row of each distinct id (-1: not in the
        vocabulary); ids not in the vocabulary are dropped, shortening their sessions."""
        rows = np.append(rows.astype(np.int32, copy=False), np.int32(-1))
        tokens = rows[codes]  # code -1 (null) reads the appended -1
        valid = tokens >= 0
        if not valid.all():
            session = np.repeat(np.arange(len(lengths)), lengths)
            lengths = np.bincount(session[valid], minlength=len(lengths))
            tokens = tokens[valid]
        return tokens, np.asarray(lengths, dtype=np.int64)

    def session_times(self) -> np.ndarray | None:
        """Each session's start in seconds (float64, corpus order) from a SESSIONS dir's
        ``start`` column; None for in-memory sessions or when a start is missing."""
        if self.directory is None:
            return None
        parts = []
        for batch in iter_session_batches(self.directory, ("start",), CHUNK_SESSIONS):
            col = batch.column(0)
            if col.null_count:
                return None
            parts.append(start_seconds(col))
        times = np.concatenate(parts) if parts else np.zeros(0)
        return times if len(times) == self.sessions else None

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(tokens int32, session lengths int64)`` per chunk, in corpus order."""
        if self._chunks is not None:
            yield from self._chunks
            return
        for batch in iter_session_batches(self.directory, ("items",), CHUNK_SESSIONS):
            col = batch.column(0)
            encoded = pc.dictionary_encode(pc.list_flatten(col))
            codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
            rows = np.array([self._index.get(item, -1) for item in encoded.dictionary.to_pylist()],
                            dtype=np.int32)
            yield self._tokens(codes, rows, lengths)


def sorted_distinct(a: np.ndarray) -> np.ndarray:
    """The distinct values of the non-decreasing array ``a``, in order.

    ``np.unique`` without its sort, and without the import of ``numpy.ma`` (~6 ms) that its
    first call in a process costs (numpy 2): a fixed cost of every training run otherwise.
    """
    keep = np.ones(len(a), dtype=bool)
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def alias_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table (Vose's construction) of the distribution ``p`` (sums to 1).

    Slot ``i`` (each taken with probability ``1/n``) yields item ``i`` with probability
    ``prob[i]`` and item ``alias[i]`` otherwise; together they give each item exactly its
    ``p``, up to float rounding (relative error below 1e-13 on 2M items). One pass over the
    items, in Python lists: 0.1 s for 200k items, once per training.
    """
    n = len(p)
    q = (np.asarray(p, np.float64) * n).tolist()
    prob = [1.0] * n
    alias = list(range(n))
    small = [i for i, x in enumerate(q) if x < 1.0]
    large = [i for i, x in enumerate(q) if x >= 1.0]
    while small and large:
        s, big = small.pop(), large[-1]
        prob[s], alias[s] = q[s], big
        q[big] -= 1.0 - q[s]  # the big item fills the rest of slot s
        if q[big] < 1.0:
            small.append(large.pop())
    # Left over (only by rounding): slots that keep their own item.
    return np.array(prob), np.array(alias, dtype=np.int32)


class BatchMaker:
    """Turns chunks into :class:`~recommender.train.sgns.Batch` es for one architecture/config."""

    def __init__(self, config, vocab: Vocab, dim: int, batch_size: int, group: int, shared: int):
        self.cbow = config.architecture == "cbow"
        self.window = config.window
        self.shrink = config.shrink_window
        self.negative = config.negative
        self.dim, self.batch_size, self.group, self.shared = dim, batch_size, group, shared
        self.cap = config.row_update_cap
        self.keep_alive(ALIVE_PREFETCHED)
        self._lanes = np.arange(dim // _lanes(dim), dtype=np.int64)
        self.vocab_size = len(vocab)
        # Scatter indices of every vocabulary row, for small catalogues (see FLAT_TABLE_BYTES).
        width = len(self._lanes)
        self._table = (_flat_rows(np.arange(self.vocab_size), dim).reshape(-1, width)
                       if self.vocab_size * width * 8 <= FLAT_TABLE_BYTES else None)
        self.max_exp = config.max_exp or None
        counts = self.vocab_counts = vocab.counts.astype(np.float64)
        if config.sample > 0:
            threshold = config.sample * counts.sum()
            self.keep = np.minimum((np.sqrt(counts / threshold) + 1) * threshold / counts, 1.0)
        else:
            self.keep = None
        weights = counts ** config.ns_exponent
        self.noise = weights / weights.sum()  # each item's probability of a negative draw
        self._alias_prob, self._alias = alias_table(self.noise)

    def keep_alive(self, batches: int) -> None:
        """Recycle scatter-index buffers so that the last ``batches`` batches stay intact.

        A batch holds 2 buffers (skip-gram) or 3 (CBOW); the ring has a multiple of 6 slots, so a
        slot always serves the same kind of buffer and, once sized, is never reallocated. Every
        slot is new memory the first time it is written, so a larger ring than the consumer
        needs costs page faults: a training process, which applies each batch before it asks
        for the next (2 alive), faulted ~300 pages per batch through its first unit with the
        prefetch thread's 21-slot ring (about 8 ms of a 0.5 s training; issue 9).
        """
        self._ring: list[np.ndarray] = [np.empty(0, np.int64)] * (6 * -(-batches // 2))
        self._slot = 0

    def peak_row_share(self) -> float:
        """Expected output-row updates of the busiest item per training pair.

        Per pair a row is the positive with its (subsampled) token share and a negative with
        ``negative`` times its noise probability; ``batch_size`` times this is how many stale
        updates that row sums in one batch.
        """
        counts = self.vocab_counts * (self.keep if self.keep is not None else 1.0)
        return float(np.max(counts / counts.sum() + self.negative * self.noise))

    def batches(self, tokens, lengths, rng: np.random.Generator, lr_at) -> Iterator[Batch]:
        """Minibatches of one chunk; ``lr_at(fraction of chunk done)`` gives the learning rate."""
        session = np.repeat(np.arange(len(lengths)), lengths)
        if self.keep is not None:
            kept = rng.random(len(tokens)) < self.keep[tokens]
            tokens, session = tokens[kept], session[kept]
        n = len(tokens)
        ends = np.cumsum(np.bincount(session, minlength=len(lengths)))
        s_end = ends[session]
        s_start = s_end - np.bincount(session, minlength=len(lengths))[session]
        pos = np.arange(n)
        if self.window == 0:  # the whole session is the context (Item2Vec), up to a limit
            lo = np.maximum(s_start, pos - WHOLE_SESSION_LIMIT)
            hi = np.minimum(s_end, pos + WHOLE_SESSION_LIMIT + 1)
            if n and not getattr(self, "_warned", False) and (
                    lengths.max(initial=0) > WHOLE_SESSION_LIMIT + 1):
                self._warned = True
                log.warning("--window 0: sessions longer than %d items use the %d items on either "
                            "side of each item as its context, not the whole session",
                            WHOLE_SESSION_LIMIT + 1, WHOLE_SESSION_LIMIT)
        else:
            win = np.full(n, self.window)
            if self.shrink:  # word2vec's random window shrinking: effective window in 1..window
                win = win - rng.integers(0, self.window, n)
            lo, hi = np.maximum(s_start, pos - win), np.minimum(s_end, pos + win + 1)
        count = hi - lo - 1
        count[count < 0] = 0
        total = int(count.sum())
        if total == 0:
            return
        # Centres are dealt round-robin to the chunk's batches (batch r takes centres r, r + nb,
        # r + 2 nb, ...). In corpus order one batch would hold a token's pairs with all its
        # neighbours, the same input and output rows read stale many times over, where word2vec
        # sees each update before the next pair; dealt out, neighbouring centres fall in
        # different batches and each reads the rows its neighbours just updated.
        if not self.cbow:
            yield from self._strided_pairs(tokens, lo, count, total, rng, lr_at)
            return
        nb = max(1, -(-total // self.batch_size))
        order = np.argsort(np.arange(n) % nb, kind="stable")
        count = count[order]
        cum = np.cumsum(count)
        # Batch boundaries fall between centres, after about batch_size pairs each.
        cuts = np.searchsorted(cum, np.arange(self.batch_size, total, self.batch_size), "left") + 1
        bounds = sorted_distinct(np.concatenate([[0], cuts, [n]]))
        for a, c in zip(bounds[:-1], bounds[1:]):
            cnt = count[a:c]
            pairs = int(cnt.sum())
            if pairs == 0:
                continue
            first = cum[a] - count[a]
            centre = np.repeat(order[a:c], cnt)
            k = np.arange(pairs) - (np.repeat(cum[a:c] - cnt, cnt) - first)
            ctx = lo[centre] + k
            ctx += ctx >= centre  # skip the centre itself
            yield self._cbow(tokens, order[a:c], ctx, cnt, rng, lr_at(float(cum[c - 1]) / total))

    def _strided_pairs(self, tokens, lo, count, total, rng, lr_at) -> Iterator[Batch]:
        """Skip-gram batches that take every ``nb``-th pair of the chunk, so no batch holds two
        pairs of one centre or of neighbouring centres (they share rows; see :meth:`batches`).

        The integer work is done for up to ``DEAL_PAIRS`` pairs at once (a *deal*): their rows in
        dealing order, every group's negatives in one draw. A chunk with more pairs is dealt in
        near-equal deals of consecutive centres, each round-robin within itself.
        """
        cum = np.cumsum(count)
        deals = -(-total // DEAL_PAIRS)
        cuts = np.searchsorted(cum, np.arange(1, deals) * (total / deals), "left") + 1
        bounds = np.concatenate([[0], cuts, [len(count)]]).astype(np.int64)
        done = 0
        for a, c in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            cnt = count[a:c]
            pairs = int(cnt.sum())
            if pairs == 0:
                continue
            yield from self._deal(tokens, lo, a, c, cnt, pairs, rng,
                                  lambda f, base=done, p=pairs: lr_at((base + f * p) / total))
            done += pairs

    def _deal(self, tokens, lo, a, c, cnt, pairs, rng, lr_at) -> Iterator[Batch]:
        """The batches of one deal: centres ``a..c-1`` with ``cnt`` pairs each."""
        nb = max(1, -(-pairs // self.batch_size))
        per = -(-pairs // nb)  # examples of the fullest batch; the others have one fewer
        full = pairs - (per - 1) * nb  # batches 0..full-1 have ``per`` examples
        # Token positions fit int32 (a chunk is far below 2**31 tokens): half the memory.
        centre = np.repeat(np.arange(a, c, dtype=np.int32), cnt)
        ctx = np.repeat((lo[a:c] - (np.cumsum(cnt) - cnt)).astype(np.int32), cnt)
        ctx += np.arange(pairs, dtype=np.int32)  # lo of its centre + k-th context
        ctx += ctx >= centre  # skip the centre itself
        # Pair p goes to batch p % nb, slot p // nb: a [per, nb] grid read column-wise.
        grid = np.zeros((2, per * nb), dtype=np.int32)
        # mode="clip" (positions are in range by construction): ``take`` into ``out`` in the
        # default mode copies through a fresh temporary, 2.7x the time (17 vs 6 ns a row).
        np.take(tokens, ctx, out=grid[0, :pairs], mode="clip")
        np.take(tokens, centre, out=grid[1, :pairs], mode="clip")
        del centre, ctx
        rows = np.ascontiguousarray(grid.reshape(2, per, nb).transpose(2, 0, 1))  # [nb, 2, per]
        b, s = self.group, self.shared
        g = -(-per // b)
        neg = self._negatives(rng, (nb, g, s))  # every batch's draws in one call
        for r in range(nb):
            examples = per if r < full else per - 1
            inp = np.zeros(g * b, dtype=np.int32)
            out = np.zeros(g * b, dtype=np.int32)
            inp[:examples] = rows[r, 0, :examples]
            out[:examples] = rows[r, 1, :examples]
            pos_w, neg_w, out_flat, neg_scale = self._weights(out, neg[r], examples)
            yield Batch(inp, out, neg[r], pos_w, neg_w, self._flat(inp), out_flat,
                        lr_at((r + 1) / nb), examples, self.max_exp, neg_scale=neg_scale)

    def _groups(self, out: np.ndarray, rng, examples: int):
        """Pad ``out`` to G*b, draw [G, S] shared negatives and the weight arrays."""
        b, s = self.group, self.shared
        g = -(-examples // b)
        padded = np.zeros(g * b, dtype=np.int32)
        padded[:examples] = out
        neg = self._negatives(rng, (g, s))
        return (padded, neg, *self._weights(padded, neg, examples))

    def _negatives(self, rng, shape: tuple[int, ...]) -> np.ndarray:
        """int32 rows drawn from the noise distribution (``noise``), ``shape`` of them.

        Walker's alias method: one uniform per draw picks a slot (its integer part) and whether
        the slot's own item or its alias is taken (its fraction). A binary search of the
        cumulative distribution (``searchsorted``) cost 66 ns a draw on 1,628 items and 146 ns on
        200k; this costs 20-30 ns, with the same distribution (issue 9).
        """
        n = len(self._alias)
        u = rng.random(shape)
        u *= n
        slot = u.astype(np.int32)
        np.minimum(slot, n - 1, out=slot)  # u * n may round up to n
        u -= slot
        return np.where(u < self._alias_prob[slot], slot, self._alias[slot])

    def _weights(self, padded: np.ndarray, neg: np.ndarray, examples: int):
        """(pos_w [G, b], neg_w [G, b, S], flat output rows, neg_scale or None) of one batch:
        ``padded`` its G*b positive rows (the first ``examples`` real), ``neg`` its [G, S]
        shared negatives."""
        b, s = self.group, self.shared
        g = len(padded) // b
        pos_w = np.zeros(g * b, dtype=np.float32)
        pos_w[:examples] = 1.0
        pos_w = pos_w.reshape(g, b)
        # A negative equal to the example's own positive is skipped, as in word2vec.
        neg_w = np.empty((g, b, s), dtype=np.float32)
        np.not_equal(padded.reshape(g, b, 1), neg.reshape(g, 1, s), out=neg_w)
        neg_w *= np.float32(self.negative / s)
        neg_w.reshape(g * b, s)[examples:] = 0  # padding
        out_rows = np.concatenate([padded, neg.reshape(-1)])
        neg_scale = None
        if self.cap:
            # Optional (off by default): a row's load is one per use as a positive, negative/S
            # per example of the group per draw as a negative; only the negative updates are
            # capped, in full draws (b * negative / S each). This biases popular rows: on a
            # heavy head the vectors drift towards one direction (issue 9), hence off.
            neg_load = np.repeat(pos_w.sum(axis=1) * (self.negative / s), s)
            out_scale = self._scale(out_rows, np.concatenate([pos_w.reshape(-1), neg_load]),
                                    self.cap * b * self.negative / s)
            neg_scale = out_scale[g * b:].reshape(g, s)
        return pos_w, neg_w, self._flat(out_rows), neg_scale

    def _flat(self, rows: np.ndarray, vocabulary: bool = True) -> np.ndarray:
        """:func:`~recommender.train.sgns._flat_rows` of ``rows``, in a recycled buffer.

        ``vocabulary``: the rows are vocabulary rows (they may be read from the table of a small
        catalogue); False for other matrices (CBOW's per-batch means)."""
        width = self.dim // _lanes(self.dim)
        n = len(rows) * width
        slot = self._slot = (self._slot + 1) % len(self._ring)
        if len(self._ring[slot]) < n:
            self._ring[slot] = np.empty(int(n * 1.25), np.int64)
        out = self._ring[slot][:n].reshape(len(rows), width)
        if vocabulary and self._table is not None:
            np.take(self._table, rows, axis=0, out=out, mode="clip")  # rows are in range
            return out.reshape(-1)
        start = rows.astype(np.int64)
        start *= width
        np.add(start[:, None], self._lanes, out=out)  # one pass over the [rows, width] output
        return out.reshape(-1)

    def _scale(self, rows: np.ndarray, load: np.ndarray, cap: float) -> np.ndarray:
        """Per-entry factor ``min(1, cap / total load of its row in this batch)``.

        A popular item is drawn as a negative for many examples of one batch, and the sum of
        their pushes, all computed from the same stale weights, overshoots where word2vec's
        one-by-one updates would saturate (large batches then diverge). Capping its negative
        update at ``cap`` (examples' worth; the caller passes the config's cap in draws times
        one draw's weight) keeps them stable and leaves other rows exact.
        """
        if not cap:
            return np.ones(len(rows), dtype=np.float32)
        total = np.bincount(rows, weights=load, minlength=self.vocab_size)[rows]
        return np.minimum(1.0, cap / np.maximum(total, 1e-12)).astype(np.float32)

    def _cbow(self, tokens, centre_pos, ctx, cnt, rng, lr) -> Batch:
        has = cnt > 0
        examples = int(has.sum())
        centres = tokens[centre_pos[has]]
        padded_out, neg, pos_w, neg_w, out_flat, neg_scale = self._groups(centres, rng, examples)
        local = np.repeat(np.arange(examples), cnt[has])
        counts = np.ones(len(padded_out), dtype=np.float32)
        counts[:examples] = cnt[has]
        inp = tokens[ctx]
        return Batch(inp, padded_out, neg, pos_w, neg_w, self._flat(inp), out_flat, lr,
                     examples, self.max_exp, local, counts, self._flat(local, False),
                     neg_scale)
