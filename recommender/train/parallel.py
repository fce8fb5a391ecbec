"""Training in several processes on shared weights (``TrainConfig.processes > 1``), Hogwild-style.

Why processes: the trainer's float math does not run faster in two *threads*. ``np.add.at``,
numpy's only duplicate-safe scatter-add, holds the GIL, and the rest is many small numpy calls
that take it back and forth: the same batches applied to two independent copies of the weights
in two threads of one process ran at 0.87x the throughput of one thread, in two processes at
1.52x (``benchmarks/bench_parallel.py``). Splitting every batch between two processes in
lock-step (bit-identical) costs more in synchronisation than it saves: a batch is about a
millisecond of work.

So the processes do not synchronise per batch. The input and output matrices live in shared memory;
the parent reads the corpus and hands out *units* (whole sessions of a chunk, about ``UNIT_TOKENS``
tokens) through a queue; each worker prepares and applies the batches of its unit and writes
straight into the shared weights, as word2vec.c's and gensim's threads do ("Hogwild", Recht et al.
2011). Nor do they meet between epochs unless the caller reads the weights there (a checkpoint, a
callback): the next epoch's units go out while the last ones of this epoch still train. Where they
do meet, and at the end, the last chunk is cut ``TAIL_SPLIT`` times finer so they finish together.
Updates of a row from two processes can interleave and one can be lost; rows are 64 floats among
tens of thousands, so this is rare and, like SGD noise, harmless to quality (measured in the
benchmark). The price is reproducibility: the result depends on timing, so the same seed no longer
gives bit-identical vectors (``processes = 1``, the default, does). Each unit keeps its own random
stream, ``(seed, epoch, chunk, part)``, and its learning rate is the one sequential training would
use at that point of the epoch. Each process's automatic batch obeys the batch-size bounds on its
own (``auto_batch_size`` says what was measured).

Workers are forked: they inherit the batch maker and the shared matrices, nothing is pickled
but the units. Where ``fork`` is unavailable (Windows) ``processes > 1`` is refused. Catalogue
attributes, which update their own vectors after every batch, need ``processes = 1``.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing as mp
import os
import queue
import time
import traceback
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from recommender.core.errors import ConfigError, TrainingError
from recommender.core.lifetime import exit_when_gone
from recommender.train.corpus import sorted_distinct

# Tokens per unit of work handed to a process (whole sessions, so about this many): small
# enough that the processes share the work evenly (a 2M-token corpus is ~30 units; a chunk is
# cut into at least 2 units per process), large enough that the queue is not the work.
UNIT_TOKENS = 1 << 16
# Before the processes meet (the end of training, or an epoch whose weights are read) the last
# chunk is cut this many times finer: one waits for the other's last unit (half a unit on
# average; an eighth of it here).
TAIL_SPLIT = 8
# Seconds between checks that the workers live (in the parent) and that the parent lives (in a
# worker).
_POLL = 0.2


def _shared_like(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` in anonymous shared memory, inherited by forked children."""
    buf = mmap.mmap(-1, max(a.nbytes, 1))
    out = np.frombuffer(buf, dtype=a.dtype, count=a.size).reshape(a.shape)
    out[...] = a
    return out


def _units(lengths: np.ndarray, processes: int, unit_tokens: int = UNIT_TOKENS):
    """(part number, session slice, token slice) of a chunk cut at session boundaries into parts
    of about ``unit_tokens`` tokens, and into at least ``2 * processes`` parts if it has as many
    sessions."""
    ends = np.concatenate([[0], np.cumsum(lengths)])
    parts = max(-(-int(ends[-1]) // unit_tokens), 2 * processes)
    cuts = np.searchsorted(ends, np.arange(1, parts) * (ends[-1] / parts), "left")
    bounds = sorted_distinct(np.concatenate([[0], cuts, [len(lengths)]]))
    for part, (s, e) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
        yield part, slice(s, e), slice(int(ends[s]), int(ends[e]))


def _with_last(chunks):
    """``(number, chunk, is it the last)`` of each chunk, reading one chunk ahead."""
    it = iter(chunks)
    current = next(it, None)
    number = 0
    while current is not None:
        ahead = next(it, None)
        yield number, current, ahead is None
        current, number = ahead, number + 1


def _work(maker, apply, config, w_in, w_out, tasks, results, parent: int) -> None:
    """A worker's loop: apply each unit's batches to the shared weights, report its loss."""
    # The worker ends with its parent, checked in a thread: a check only while waiting for a
    # unit missed a parent killed while writing one. The worker then blocked for good reading
    # the rest, because the workers hold the pipe's write end too (4 of 30 kills under load).
    exit_when_gone(lambda: os.getppid() == parent, _POLL, "pin2vec-parent-watch")
    maker.keep_alive(2)  # each batch is applied before the next is made (see keep_alive)
    try:
        while True:
            task = tasks.get()
            if task is None:
                return
            key, epoch, base, span_lr, planned, tokens, lengths = task
            start = time.perf_counter()
            raw = len(tokens)
            rng = np.random.default_rng([config.seed, epoch, *key])

            def lr_at(fraction, base=base, raw=raw):
                return max(config.alpha - span_lr * (base + fraction * raw) / planned,
                           config.min_alpha)

            loss, examples = 0.0, 0
            for batch in maker.batches(tokens, lengths, rng, lr_at):
                loss += apply(w_in, w_out, batch)
                examples += batch.examples
            results.put((epoch, raw, loss, examples, os.getpid(), start, time.perf_counter()))
    except BaseException:  # reported to the parent, which raises it as a TrainingError
        results.put(("error", traceback.format_exc()))


class ProcessTrainer:
    """``processes`` workers applying batches to shared ``w_in``/``w_out`` (see the module doc).

    :attr:`w_in` and :attr:`w_out` are the shared matrices (read them between epochs, e.g. for
    checkpoints); :meth:`close` stops the workers.
    """

    def __init__(self, config, maker, apply: Callable, w_in: np.ndarray, w_out: np.ndarray):
        if "fork" not in mp.get_all_start_methods():
            raise ConfigError("processes > 1 needs the 'fork' start method (Linux, macOS); "
                              "use processes=1 here")
        self.config = config
        self.w_in, self.w_out = _shared_like(w_in), _shared_like(w_out)
        ctx = mp.get_context("fork")
        self.tasks = ctx.Queue(2 * config.processes)
        self.results = ctx.Queue()
        # (epoch, raw tokens, worker pid, start, end) of every finished unit, in the order they
        # came back; start and end are time.perf_counter() of the worker (CLOCK_MONOTONIC on
        # Linux: one clock for all processes). benchmarks/bench_timeline.py reads it.
        self.units: list[tuple] = []
        self.procs = [ctx.Process(target=_work, name=f"pin2vec-train-{i}", daemon=True,
                                  args=(maker, apply, config, self.w_in, self.w_out, self.tasks,
                                        self.results, os.getpid()))
                      for i in range(config.processes)]
        for p in self.procs:
            p.start()

    def _check_alive(self) -> None:
        dead = [p for p in self.procs if not p.is_alive()]
        if dead:
            # A worker that failed reported its traceback before it stopped: raise that one.
            with contextlib.suppress(queue.Empty, OSError, EOFError):
                while True:
                    item = self.results.get(timeout=_POLL)
                    if item[0] == "error":
                        raise TrainingError(f"a training process failed:\n{item[1]}")
            raise TrainingError(f"training process {dead[0].name} stopped unexpectedly "
                                f"(exit code {dead[0].exitcode}); out of memory? try "
                                "--processes 1")

    def _result(self):
        while True:
            try:
                item = self.results.get(timeout=_POLL)
            except queue.Empty:
                self._check_alive()
                continue
            if item[0] == "error":
                raise TrainingError(f"a training process failed:\n{item[1]}")
            return item

    def run(self, chunks: Callable[[], Iterable], epochs: range, raw_tokens: int, planned: int,
            on_unit: Callable[[int, int, float, int], None],
            sync: bool) -> Iterator[tuple[int, float, int]]:
        """Train ``epochs`` over the corpus ``chunks()`` (``raw_tokens`` a pass); yield
        ``(epoch, summed loss, examples)`` for each epoch, in order, once all its units are in.

        ``on_unit(epoch, raw tokens, loss, examples)`` is called as units finish, in the order
        they finish. With ``sync`` after every epoch, and otherwise after the last, the
        processes meet: the epoch's last chunk is cut ``TAIL_SPLIT`` times finer so they finish
        together, and the next epoch's units go out only when the caller asks for the next value,
        so at the yield the weights are exactly the epoch's end (a checkpoint, a callback).
        Otherwise the next epoch's units go out while this epoch's last ones still train, and
        no process waits at the boundary (the trainer syncs only when something reads the
        weights between epochs).
        """
        span = self.config.alpha - self.config.min_alpha
        loss: dict[int, float] = {}
        examples: dict[int, int] = {}
        pending: dict[int, int] = {}  # units handed out and not yet back, per epoch
        handed = set()  # epochs whose every unit has been handed out
        waiting = list(epochs)  # epochs not yet yielded, in order

        def receive() -> None:
            epoch, raw, unit_loss, unit_examples, *when = self._result()
            self.units.append((epoch, raw, *when))
            loss[epoch] += unit_loss
            examples[epoch] += unit_examples
            pending[epoch] -= 1
            on_unit(epoch, raw, unit_loss, unit_examples)

        def finished():
            while waiting and waiting[0] in handed and not pending[waiting[0]]:
                e = waiting.pop(0)
                yield e, loss.pop(e), examples.pop(e)

        for epoch in epochs:
            meet = sync or epoch == epochs[-1]
            loss[epoch], examples[epoch], pending[epoch] = 0.0, 0, 0
            done = epoch * raw_tokens  # tokens before this chunk, as sequential training counts
            for chunk, (tokens, lengths), last in _with_last(chunks()):
                fine = last and meet
                unit_tokens = max(UNIT_TOKENS // TAIL_SPLIT, 1) if fine else UNIT_TOKENS
                for part, sessions, toks in _units(lengths, self.config.processes, unit_tokens):
                    task = ((chunk, part), epoch, done + toks.start, span, planned, tokens[toks],
                            lengths[sessions])
                    while True:  # block while the queue is full, but notice a dead worker
                        try:
                            self.tasks.put(task, timeout=_POLL)
                            break
                        except queue.Full:
                            self._check_alive()
                    pending[epoch] += 1
                    while not self.results.empty():
                        receive()
                    yield from finished()
                done += len(tokens)
            handed.add(epoch)
            if meet:
                while any(pending.values()):
                    receive()
            yield from finished()

    def close(self) -> None:
        """Stop the workers (they finish their unit first) and wait for them."""
        # One stop sign per live worker, counted before any is sent: a worker that takes its
        # sign and exits while the others' are still being sent must not cost one of them
        # theirs (it did, now and then: the worker left without one idled until terminated).
        for _ in [p for p in self.procs if p.is_alive()]:
            try:
                self.tasks.put(None, timeout=1)
            except queue.Full:  # units left after an error; the join's timeout ends those
                pass
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join()
        self.tasks.cancel_join_thread()  # units left after an error are not waited for
        self.tasks.close()
        self.results.close()
