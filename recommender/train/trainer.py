"""Train item vectors with skip-gram or CBOW and negative sampling (Mikolov et al. 2013) in numpy.

``train(source, config)`` reads a SESSIONS directory (streamed: memory grows with the catalogue,
not the corpus) or in-memory sequences of item ids and returns a
:class:`~recommender.train.model.Model`;
``pin2vec train`` does the same from the command line and writes a MODEL directory.

How it is fast: the integer work of a minibatch (subsampling, window pairs, shared negatives,
scatter indices; :mod:`recommender.train.corpus`) is prepared ahead in a producer thread while the
calling thread does the float math as matrix products (:mod:`recommender.train.sgns`); numpy
releases the GIL in both. Examples in a small group share negatives (weighted so the expected
gradient is word2vec's; see ``group_size``). Like gensim, terms scored beyond ``max_exp`` (6) on
the wrong side are skipped, and the input vectors start uniform in ``[-1/dim, 1/dim)``.

Why the vectors do not collapse (issue 9): on logs with a heavy popularity head every batch
draws the popular items as negatives many times. Shrinking their negative update (the former
default ``row_update_cap=1``) removed up to half of all negative-sampling push on small
catalogues, leaving the positive pull intact, and every vector drifted towards one direction.
The update is now word2vec's in expectation for every row; a group's negative draw stands for
``group_size * negative / shared_negatives`` examples (10 by default, 40 before), which keeps
the output vectors' updates fine-grained enough to match gensim's input . output ranking.

Reproducibility: every random draw comes from a generator seeded with ``(seed, epoch, chunk)``
and updates are applied in corpus order by one thread, so the same seed gives bit-identical
vectors with *any* ``workers`` value (``workers`` only decides whether batch preparation overlaps
the math), on the same machine and numpy/BLAS build. A checkpoint after each epoch lets a resumed
run reproduce an uninterrupted one exactly.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from recommender.core.artifacts import (
    file_digest,
    prepare_output_dir,
    read_manifest,
    remove_stale_temp,
)
from recommender.core.errors import ConfigError, TrainingError
from recommender.core.progress import bars_enabled, plain_lines, progress_bar, say
from recommender.train.attributes import attribute_trainer, one_blas_thread
from recommender.train.checkpoint import (
    CHECKPOINT_DIR,
    finished_model,
    load_checkpoint,
    save_checkpoint,
)
from recommender.train.corpus import BatchMaker, Corpus
from recommender.train.model import (
    Model,
    check_word2vec_ids,
    collapse_advice,
    mean_pair_cosine,
)
from recommender.train.parallel import ProcessTrainer
from recommender.train.prefetch import prefetch
from recommender.train.sgns import apply_cbow_batch, apply_sgns_batch, release_scratch

__all__ = ["TrainConfig", "Model", "train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Training options; names and meanings follow gensim's Word2Vec.

    The last four fields belong to the batched numpy algorithm. ``row_update_cap`` (off by
    default) bounds the negative-sampling update one row takes from a single batch, in
    shared-negative draws (one draw carries ``group_size * negative / shared_negatives``
    examples' worth). It biases the gradient against popular items and, on logs with a heavy
    head, collapses the vectors towards one direction; use it only if very large batches diverge.
    """

    architecture: str = "skipgram"  # "skipgram" (predict context from item) or "cbow"
    dim: int = 64  # vector size
    window: int = 5  # max distance between item and context; 0 = the whole session (Item2Vec)
    shrink_window: bool = True  # word2vec's random window shrinking; False = every pair in window
    negative: int = 5  # negative samples per positive example
    ns_exponent: float = 0.75  # negatives ~ count**ns_exponent; 0 = uniform, < 0 favours rare items
    sample: float = 1e-3  # word2vec subsampling threshold for frequent items; 0 disables
    min_count: int = 1  # drop items seen fewer times (SESSIONS dirs are already filtered)
    epochs: int = 5
    alpha: float = 0.025  # initial learning rate, decayed linearly over all planned tokens ...
    min_alpha: float = 0.0001  # ... to this
    seed: int = 1
    workers: int = 2  # 1 = one thread; >= 2 prepares batches in a 2nd thread (same result)
    # > 1: that many processes update shared weights without locks (Hogwild; faster on several
    # cores, but not bit-reproducible; see recommender.train.parallel); 1 = reproducible
    processes: int = 1
    batch_size: int | None = None  # pairs per minibatch; None = by corpus size, 256..2048
    group_size: int = 16  # examples that share one set of negatives (1 = word2vec's own)
    # negatives drawn per group, each weighted negative / this; None = as many as keep one draw
    # at most DRAW_EXAMPLES examples' worth: 8 for negative 5, 16 for negative 10 (groups of 16)
    shared_negatives: int | None = None
    row_update_cap: float = 0.0  # max draws' worth of negative update per row & batch; 0 = off
    max_exp: float = 6.0  # skip terms scored beyond ±this on the wrong side, like gensim; 0 = off
    progress: bool = True  # tqdm progress bar

    def __post_init__(self):
        def need(ok, msg):
            if not ok:
                raise ConfigError(msg)

        need(self.architecture in ("skipgram", "cbow"),
             f"architecture must be 'skipgram' or 'cbow', not {self.architecture!r}")
        optional = tuple(name for name in ("batch_size", "shared_negatives")
                         if getattr(self, name) is not None)
        for name in ("dim", "negative", "epochs", "min_count", "workers", "processes",
                     "group_size") + optional:
            value = getattr(self, name)
            whole = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            need(whole and value >= 1, f"{name} must be a whole number >= 1, got {value!r}")
        need(isinstance(self.window, (int, np.integer)) and self.window >= 0,
             f"window must be a whole number >= 0 (0 = whole session), got {self.window!r}")
        need(np.isfinite(self.ns_exponent), f"ns_exponent must be finite, got {self.ns_exponent!r}")
        need(0 <= self.sample < 1, f"sample must be in [0, 1) (0 disables), got {self.sample!r}")
        need(0 < self.alpha <= 1, f"alpha must be in (0, 1], e.g. 0.025; got {self.alpha!r}")
        need(0 <= self.min_alpha <= self.alpha,
             f"min_alpha must be in [0, alpha={self.alpha}], got {self.min_alpha!r}")
        need(self.max_exp >= 0, f"max_exp must be >= 0 (0 disables), got {self.max_exp!r}")
        need(self.row_update_cap >= 0,
             f"row_update_cap must be >= 0 (0 disables), got {self.row_update_cap!r}")
        need(self.batch_size is None or self.batch_size >= self.group_size,
             f"batch_size ({self.batch_size}) must be >= group_size ({self.group_size})")
        need(isinstance(self.seed, (int, np.integer)) and self.seed >= 0,
             f"seed must be a whole number >= 0, got {self.seed!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def negatives_per_group(self) -> int:
        """``shared_negatives``, or by default enough draws that one carries at most
        ``DRAW_EXAMPLES`` examples' worth of negative update (``group_size * negative / draws``)."""
        if self.shared_negatives is not None:
            return self.shared_negatives
        return max(1, -(-self.group_size * self.negative // DRAW_EXAMPLES))


# Examples' worth one shared negative draw may carry by default (see negatives_per_group). A
# coarser push (e.g. 20 with 8 draws for negative 10) costs HR@10 by input . output vector:
# planted corpus, setting B: 0.332 with 8 draws vs 0.342 with 16 (gensim 0.344).
DRAW_EXAMPLES = 10

# Expected updates of the busiest row per batch that auto_batch_size allows (see there).
MAX_ROW_UPDATES = 160
# Most pairs per batch (per process) auto_batch_size chooses. Measured on the dense log x10 (16k
# items), one process inside the training loop: 0.70 / 0.68 / 0.83 / 0.89 us per pair at 1,024 /
# 2,048 / 4,096 / 8,192 (8,192 was the cap before; issue 9). With two processes at 2,048 each
# instead of 4,096, input.output HR@10 at setting C of the planted corpus came to 0.3235 against
# gensim's 0.3278 (0.0050-0.0072 below before). Capping the processes' batches together (1,024
# each for two) helped there too but cost input.output ranking on the dense log (0.1048 against
# gensim's 0.1105 at its defaults, 1,024 instead of 1,280 pairs), so the cap is per process.
MAX_BATCH = 2048

# Fields that may differ between a run and its resumption: they do not change what is trained
# (``processes`` changes the order of updates and the automatic batch size of the rest).
_NEUTRAL = ("workers", "processes", "progress")

Callback = Callable[[int, float, Model], None]


def train(source, config: TrainConfig = TrainConfig(), callbacks: Iterable[Callback] = (),
          output_dir=None, resume: bool = False, overwrite: bool = False,
          export_word2vec: bool = False, attributes=None, session_times=None) -> Model:
    """Train item vectors on sessions.

    Parameters
    ----------
    source : str, Path or iterable of sequences of str
        A SESSIONS directory, or sessions as lists of item ids (tests, tuning).
    config : TrainConfig
    callbacks : iterable of callables
        Each is called as ``cb(epoch, loss, model)`` after every epoch (and after its checkpoint):
        ``epoch`` counts completed epochs from 1, ``loss`` is the epoch's mean loss per example
        (pair for skip-gram, centre for CBOW), ``model`` a :class:`Model` over the live weights:
        copy the arrays to keep them. An exception from a callback stops training.
    output_dir : str or Path, optional
        Write a checkpoint there after each epoch and the MODEL directory at the end.
    resume : bool
        Continue from the checkpoint in ``output_dir`` (same source and config) if there is one.
    overwrite : bool
        Allow replacing a non-empty ``output_dir`` when not resuming.
    export_word2vec : bool
        Also write ``vectors.txt`` into ``output_dir``.
    attributes : (CatalogAttributes, AttributeConfig), optional
        Also learn attribute-value vectors (cold start; :mod:`recommender.train.attributes`).
    session_times : sequence of float, optional
        Each in-memory session's start (seconds, any origin), for choosing how cold items are
        scored: validation on the latest sessions and recent engagements
        (:mod:`recommender.train.cold_choice`). A SESSIONS directory's ``start`` is read instead.

    Returns
    -------
    Model
    """
    if not isinstance(config, TrainConfig):
        raise ConfigError("config must be a recommender.train.TrainConfig")
    if config.processes > 1 and attributes is not None:
        raise ConfigError("catalogue attributes are trained with processes=1 only (their vectors "
                          "follow every batch); drop --processes or the attributes")
    t0 = time.perf_counter()
    corpus = Corpus(source, config.min_count)
    vocab = corpus.vocab
    if session_times is not None:
        session_times = _session_times(session_times, corpus.sessions)
    source_digest = file_digest(corpus.directory / "manifest.json") if corpus.directory else None
    log.info("vocabulary: %d items, %d tokens in %d sessions (%.1fs)", len(vocab),
             corpus.raw_tokens, corpus.sessions, time.perf_counter() - t0)
    manifest = {"config": config.to_dict(), "seed": config.seed, "source_digest": source_digest,
                "source": str(corpus.directory) if corpus.directory else None,
                "corpus": {"sessions": corpus.sessions, "tokens": corpus.raw_tokens},
                "epochs": []}
    if export_word2vec:
        check_word2vec_ids(vocab.item_ids)  # fail now rather than after training
    d, v_size = config.dim, len(vocab)
    # Initial input vectors uniform in [-1/d, 1/d), like gensim (word2vec.c uses half that range).
    # A rare item takes few updates, all along its few contexts; the wider random start keeps
    # such items apart (mean random-pair cosine 0.96 -> 0.89 on the dense benchmark log).
    rng = np.random.default_rng([config.seed, 2**32 - 1])
    w_in = ((rng.random((v_size, d), dtype=np.float32) * 2 - 1) / d).astype(np.float32)
    w_out = np.zeros((v_size, d), dtype=np.float32)
    start_epoch = 0
    out = Path(output_dir) if output_dir is not None else None
    if out is not None:
        remove_stale_temp(out)  # a killed run's half-written files
        state = load_checkpoint(out, config, vocab, source_digest, _NEUTRAL) if resume else None
        if state is not None:
            start_epoch, w_in, w_out, manifest["epochs"] = state
            log.info("resuming from the checkpoint after epoch %d in %s", start_epoch, out)
        else:
            if resume and (out / "manifest.json").is_file():
                done = finished_model(out, config, source_digest, overwrite, _NEUTRAL)
                if done is not None:
                    return done
            prepare_output_dir(out, overwrite, kind="model", inputs=[corpus.directory])
    model = Model(w_in, w_out, vocab.item_ids, vocab.counts, manifest)
    side = attribute_trainer(attributes, vocab.item_ids, d, config.seed, manifest,
                             (out / CHECKPOINT_DIR, start_epoch) if out is not None else None,
                             vocab.counts)
    callbacks = list(callbacks)
    if side is not None and out is not None:  # attribute vectors join each checkpoint
        callbacks = [side.checkpoint_saver(out / CHECKPOINT_DIR), *callbacks]
    maker = BatchMaker(config, vocab, d, 0, config.group_size, config.negatives_per_group())
    maker.batch_size = batch_size = config.batch_size or auto_batch_size(
        corpus.raw_tokens, config.group_size, maker.peak_row_share(), config.processes)
    manifest["batch_size"] = batch_size
    apply = apply_cbow_batch if config.architecture == "cbow" else apply_sgns_batch
    planned = config.epochs * corpus.raw_tokens
    pool = bar = None

    def advance(epoch: int, raw: int, loss: float, examples: int) -> None:
        """After each chunk (or a process's unit): stop on divergence, move the bar."""
        if not np.isfinite(loss):
            raise TrainingError(_diverged(config, epoch))
        if bar is not None:
            bar.update(raw)
            rate = bar.n / max(bar.format_dict["elapsed"], 1e-9)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss / max(examples, 1):.4f}",
                            words_s=f"{rate:,.0f}")

    switch = sys.getswitchinterval()
    held = contextlib.ExitStack()
    if side is not None:  # the attribute replay's small products (see one_blas_thread)
        held.enter_context(one_blas_thread())
    if config.workers > 1:
        # Both threads run many short numpy calls; with the default 5 ms GIL switch interval a
        # thread coming back from a GIL-free numpy call waits for the other one's turn to end.
        sys.setswitchinterval(1e-4)
    try:
        if config.processes > 1 and start_epoch < config.epochs:
            # Started before any thread of ours (progress bar, batch prefetch): they are forked.
            pool = ProcessTrainer(config, maker, apply, w_in, w_out)
            w_in, w_out = model.vectors, model.context_vectors = pool.w_in, pool.w_out
        bar = _progress(config, planned, start_epoch * corpus.raw_tokens)
        epochs = range(start_epoch, config.epochs)
        if pool is not None:
            # The processes meet between epochs only when something reads the weights there.
            done = pool.run(corpus.chunks, epochs, corpus.raw_tokens, planned, advance,
                            sync=out is not None or bool(callbacks))
        else:
            done = _sequential_epochs(corpus, maker, config, epochs, planned, apply, w_in, w_out,
                                      side, advance)
        e0 = time.perf_counter()
        for epoch, loss, examples in done:
            seconds = time.perf_counter() - e0
            mean = loss / max(examples, 1)
            if not np.isfinite(mean) or not np.isfinite(w_in).all():
                raise TrainingError(_diverged(config, epoch))
            manifest["epochs"].append({"epoch": epoch + 1, "loss": float(mean),
                                       "examples": examples, "seconds": round(seconds, 3),
                                       "words_per_second": corpus.raw_tokens / max(seconds, 1e-9)})
            log.info("epoch %d/%d: loss %.5f, %.0f words/s", epoch + 1, config.epochs, mean,
                     corpus.raw_tokens / max(seconds, 1e-9))
            if bar is None and plain_lines(config.progress):
                say(f"train epoch {epoch + 1}/{config.epochs}: loss {mean:.4f}, "
                    f"{corpus.raw_tokens / max(seconds, 1e-9):,.0f} words/s")
            if out is not None:
                save_checkpoint(out, epoch + 1, w_in, w_out, config, vocab, source_digest,
                                manifest["epochs"])
            for cb in callbacks:
                cb(epoch + 1, float(mean), model)
            e0 = time.perf_counter()  # the next epoch's time starts after this one's work
    finally:
        sys.setswitchinterval(switch)
        release_scratch()
        held.close()
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.close()
    if pool is not None:  # out of the shared memory, which goes with the pool
        w_in, w_out = model.vectors, model.context_vectors = w_in.copy(), w_out.copy()
    total = sum(e["seconds"] for e in manifest["epochs"])
    manifest["words_per_second"] = (len(manifest["epochs"]) * corpus.raw_tokens / total
                                    if total else None)
    manifest["mean_pair_cosine"] = mean_pair_cosine(w_in)
    advice = collapse_advice(manifest["mean_pair_cosine"])
    if advice:
        log.warning("%s", advice)
    if side is not None:  # how cold items are matched, chosen on pseudo-cold items
        times = corpus.session_times() if session_times is None else session_times
        choice = side.choose_cold(corpus.chunks(), corpus.sessions, w_in, w_out, times=times)
        manifest["attributes_training"]["cold_scoring"] = choice
        log.info("cold items: %s scoring, popularity %g%s (%s)", choice["scoring"],
                 choice["popularity"], f" of recent engagements (half-life {choice['half_life']:g}"
                 " s)" if choice.get("recency") else "", choice["chosen_by"])
    model.attributes = side.result() if side is not None else None
    if out is not None:
        model._write(out, export_word2vec)
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
        model.manifest = read_manifest(out, "model")
    return model


def _session_times(times, sessions: int) -> np.ndarray:
    """``times`` as float64 [sessions], or a ConfigError saying what is wrong with them."""
    try:
        out = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError("session_times must be numbers (seconds), one per session") from None
    if out.shape != (sessions,):
        raise ConfigError(f"session_times has shape {list(out.shape)}; expected one start time "
                          f"per session ({sessions})")
    if not np.isfinite(out).all():
        raise ConfigError("session_times must be finite")
    return out


def auto_batch_size(tokens: int, group_size: int = 64, peak_row_share: float = 0.0,
                    processes: int = 1) -> int:
    """Pairs per batch when not given, within 256..``MAX_BATCH``: a power of two for one
    process, a multiple of 256 per process for several.

    Large batches are fast, but a small corpus needs enough SGD steps per epoch (at most
    tokens / 32), and a batch must not hold too many updates of one row: they are all computed
    from the same stale weights and overshoot where word2vec's one-by-one updates saturate.
    ``peak_row_share`` (:meth:`BatchMaker.peak_row_share`) bounds the batch so that the busiest
    item takes about ``MAX_ROW_UPDATES`` updates per batch at most: a heavy head or a small
    catalogue gets smaller batches instead of a cap that biases popular items. With
    ``processes`` training at once, each process's batch obeys both bounds on its own. Until
    issue 9's last round they held for the processes' batches together (each process computes
    its batch without the others' updates in flight), but on the dense benchmark log, the only
    one where they bind, that cost speed and bought no quality: two processes at 2,048 pairs
    each instead of the shared bound's 1,280 gave HR@10 (cosine / input . output) 0.1012 / 0.1094
    against 0.1000 / 0.1092 at gensim's defaults, 0.1145 / 0.1454 against 0.1141 / 0.1448 at
    issue 9's setting B, medians of 3 seeds (``bench_spread.py --corpora dense --set
    processes=2``), and trained 1.05-1.13x the words/s in paired runs (``bench_trainer.py --log
    dense --processes 2 --against``). Several processes' batches round down to a multiple of
    256 rather than a power of two, so they use what the bounds allow (2M-token benchmark: 768
    pairs where 790 were allowed trained 7% faster than 512), while one process keeps its
    powers of two and so its reproducible results.

    ``MAX_BATCH`` caps each process's batch: above about 2,048 pairs a batch's gathered rows
    and scatter indices outgrow a core's L2 cache, and with two processes, batches of 4,096 each
    cost input·output ranking at issue 9's settings B and C (see ``MAX_BATCH``).
    """
    size = max(int(tokens // 32), 1)
    if peak_row_share > 0:
        size = min(size, int(MAX_ROW_UPDATES / peak_row_share))
    size = min(size, MAX_BATCH)
    size = 1 << max(size, 1).bit_length() - 1 if processes == 1 else size - size % 256
    return max(size, 256, group_size)


def _diverged(config: TrainConfig, epoch: int) -> str:
    return (f"training diverged (loss is NaN or infinite) in epoch {epoch + 1}: lower --alpha "
            f"(now {config.alpha}, try {config.alpha / 5:g}), lower --batch-size, or check the "
            "sessions for degenerate input")


def _sequential_epochs(corpus: Corpus, maker: BatchMaker, config: TrainConfig, epochs: range,
                       planned: int, apply, w_in, w_out, side, advance):
    """Train ``epochs`` in this process; yield ``(epoch, summed loss, examples)`` after each
    (the caller checkpoints there: nothing trains until it asks for the next)."""
    for epoch in epochs:
        loss, examples = 0.0, 0
        batches = _epoch_batches(corpus, maker, config, epoch, planned)
        if side is not None:  # the attributes' integer work, in the producer thread too
            batches = side.prepared(batches)
        for batch, done in prefetch(batches, config.workers > 1):
            if batch is None:  # end of a chunk: done = its raw tokens
                advance(epoch, done, loss, examples)
                continue
            loss += apply(w_in, w_out, batch)
            examples += batch.examples
            if side is not None:
                side.step(w_in, w_out, batch)
        yield epoch, loss, examples


def _epoch_batches(corpus: Corpus, maker: BatchMaker, config: TrainConfig, epoch: int,
                   planned: int):
    """Batches of one epoch, then ``(None, raw tokens)`` after each chunk."""
    done = epoch * corpus.raw_tokens
    span = config.alpha - config.min_alpha
    for chunk, (tokens, lengths) in enumerate(corpus.chunks()):
        rng = np.random.default_rng([config.seed, epoch, chunk])
        raw = len(tokens)

        def lr_at(fraction, base=done, raw=raw):
            return max(config.alpha - span * (base + fraction * raw) / planned, config.min_alpha)

        for batch in maker.batches(tokens, lengths, rng, lr_at):
            yield batch, 0
        done += raw
        yield None, raw


def _progress(config: TrainConfig, total: int, initial: int):
    if not bars_enabled(config.progress):
        return None  # no terminal: one plain line per epoch instead (see train())
    return progress_bar(total=total, initial=initial, unit="word", unit_scale=True,
                        desc="train", smoothing=0.1)
