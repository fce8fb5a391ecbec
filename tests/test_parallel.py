"""Training in several processes on shared weights (TrainConfig.processes > 1)."""

import os
import time

import numpy as np
import pytest

from recommender.core.errors import ConfigError, TrainingError
from recommender.train.parallel import _units, _with_last
from recommender.train.trainer import TrainConfig, train
from tests.test_train import QUICK, planted, purity


def test_units_cut_a_chunk_at_session_boundaries_into_two_per_process():
    units = [(part, s.start, s.stop, t.start, t.stop)
             for part, s, t in _units(np.array([3, 1, 4, 1, 5, 9, 2, 6]), 2)]
    # 31 tokens, 4 parts: sessions start at tokens 0 3 4 8 9 14 23 25; cuts at >= 7.75, 15.5, 23.25
    assert units == [(0, 0, 3, 0, 8), (1, 3, 6, 8, 23), (2, 6, 7, 23, 25), (3, 7, 8, 25, 31)]
    assert [u[1:3] for u in [(p, s.start, s.stop) for p, s, _ in _units(np.array([5]), 2)]] == [
        (0, 1)]
    assert list(_units(np.array([], dtype=np.int64), 2)) == []
    # Units of 4 tokens (the epoch's last chunk is cut finer): 8 parts, cuts at >= 3.875, 7.75,
    # 11.6, 15.5, 19.4, 23.25, 27.1 -> session starts 2, 3, 5, 6, 6, 7, 8
    fine = [(s.start, s.stop) for _, s, _ in _units(np.array([3, 1, 4, 1, 5, 9, 2, 6]), 2, 4)]
    assert fine == [(0, 2), (2, 3), (3, 5), (5, 6), (6, 7), (7, 8)]


def test_chunks_are_read_one_ahead_to_mark_the_last():
    assert list(_with_last(iter(["a", "b", "c"]))) == [(0, "a", False), (1, "b", False),
                                                      (2, "c", True)]
    assert list(_with_last(iter(["a"]))) == [(0, "a", True)]
    assert list(_with_last(iter([]))) == []


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_two_processes_learn_planted_clusters(architecture):
    model = train(planted(sessions=1600),
                  TrainConfig(architecture=architecture, epochs=5, processes=2, progress=False))
    assert purity(model) >= 0.9
    losses = [e["loss"] for e in model.manifest["epochs"]]
    assert losses[-1] < losses[0]
    assert model.manifest["config"]["processes"] == 2
    # The result is copied out of the shared memory the processes wrote into.
    assert model.vectors.flags.owndata and model.context_vectors.flags.owndata


def test_processes_train_every_pair_of_every_session_once():
    # Without subsampling or window shrinking the pairs are fixed: units cut only between
    # sessions, so each epoch trains exactly the pairs one process does.
    config = dict(sample=0.0, shrink_window=False, **QUICK)
    one = train(planted(), TrainConfig(processes=1, **config))
    two = train(planted(), TrainConfig(processes=2, **config))
    # Window 5 in sessions of 8 items: 25 pairs each way, 50 a session.
    assert ([e["examples"] for e in two.manifest["epochs"]]
            == [e["examples"] for e in one.manifest["epochs"]] == [800 * 50] * 3)


def _boom(*args):
    raise ValueError("boom in a worker")


def _die(*args):
    os._exit(3)


def test_a_failing_process_stops_training_with_its_traceback(monkeypatch):
    monkeypatch.setattr("recommender.train.trainer.apply_sgns_batch", _boom)
    with pytest.raises(TrainingError, match="(?s)a training process failed.*boom in a worker"):
        train(planted(), TrainConfig(processes=2, **QUICK))


def test_a_killed_process_stops_training_with_a_clear_error(monkeypatch):
    monkeypatch.setattr("recommender.train.trainer.apply_sgns_batch", _die)
    with pytest.raises(TrainingError, match=r"stopped unexpectedly \(exit code 3\)"):
        train(planted(), TrainConfig(processes=2, **QUICK))


def test_nan_loss_in_a_process_stops_with_advice(monkeypatch):
    monkeypatch.setattr("recommender.train.trainer.apply_sgns_batch",
                        lambda *a, **k: float("nan"))
    with pytest.raises(TrainingError, match="lower --alpha"):
        train(planted(), TrainConfig(processes=2, **QUICK))


def test_processes_are_refused_with_catalogue_attributes():
    with pytest.raises(ConfigError, match="processes=1 only"):
        train(planted(), TrainConfig(processes=2, **QUICK), attributes=object())
    with pytest.raises(ConfigError, match="processes must be a whole number >= 1"):
        TrainConfig(processes=0)


def test_each_process_obeys_the_batch_size_bounds_on_its_own():
    from recommender.train.trainer import auto_batch_size

    # Busiest row 15% of pairs: 160 / 0.15 = 1066 -> 1024 pairs, for one process and for each
    # of two (a power of two; a multiple of 256).
    assert auto_batch_size(2_000_000, 16, 0.15) == 1024
    assert auto_batch_size(2_000_000, 16, 0.15, processes=2) == 1024
    # 10%: 1600 -> 1024 for one process (a power of two); 1536 each for two (multiple of 256).
    assert auto_batch_size(2_000_000, 16, 0.1) == 1024
    assert auto_batch_size(2_000_000, 16, 0.1, processes=2) == 1536
    # Flat corpus: tokens / 32 = 25,000 -> MAX_BATCH (2,048) at most, for each process.
    assert auto_batch_size(800_000, 16) == 2048
    assert auto_batch_size(800_000, 16, processes=4) == 2048
    # Small corpus: tokens / 32 bounds each process's batch.
    assert auto_batch_size(50_000, 16) == 1024  # 1,562 -> a power of two
    assert auto_batch_size(50_000, 16, processes=4) == 1536  # 1,562 -> a multiple of 256
    assert auto_batch_size(10_000, 16, processes=4) == 256  # 312 -> 256
    assert auto_batch_size(5_000, 16, processes=4) == 256  # 156 -> the floor of 256


def test_run_refuses_processes_with_attributes_before_any_stage(tmp_path, capsys):
    from recommender.cli import main as cli

    out = tmp_path / "out"
    code = cli(["run", "--output", str(out), "--processes", "2", "--catalog-attributes",
                "category", "--quiet"])
    assert code == 2 and "--processes 1 only" in capsys.readouterr().err
    assert not out.exists()  # refused before sessionizing


class _OneExitPerSign:
    """The pool's task queue, but each stop sign waits until a worker has taken one and exited:
    the order that lost a worker its sign whenever a quick worker exited mid-close."""

    def __init__(self, tasks, procs):
        self.tasks, self.procs, self.signs = tasks, procs, 0

    def put(self, item, timeout=None):
        self.tasks.put(item, timeout=timeout)
        if item is None:
            self.signs += 1
            deadline = time.monotonic() + 5
            while (sum(p.exitcode is not None for p in self.procs) < self.signs
                   and time.monotonic() < deadline):
                time.sleep(0.005)

    def __getattr__(self, name):
        return getattr(self.tasks, name)


def test_close_stops_every_worker_without_terminating_one():
    # Each live worker gets a stop sign. close() once sent a sign per worker that was still
    # alive when its turn came: a worker that took an earlier sign and exited cost a slower one
    # its sign, and that one idled until terminated (a 5 s stall after training, 4 in 80 runs).
    from recommender.train.corpus import BatchMaker, Corpus
    from recommender.train.parallel import ProcessTrainer
    from recommender.train.sgns import apply_sgns_batch

    config = TrainConfig(processes=4, **QUICK)
    corpus = Corpus(planted(), config.min_count)
    maker = BatchMaker(config, corpus.vocab, config.dim, 256, config.group_size,
                       config.negatives_per_group())
    w = np.zeros((len(corpus.vocab), config.dim), np.float32)
    for _ in range(6):
        pool = ProcessTrainer(config, maker, apply_sgns_batch, w, w.copy())
        pool.tasks = _OneExitPerSign(pool.tasks, pool.procs)
        pool.close()
        assert [p.exitcode for p in pool.procs] == [0, 0, 0, 0]  # none terminated


@pytest.mark.parametrize("sync", [True, False])
def test_processes_meet_between_epochs_only_when_asked(sync):
    # With sync the weights at each yield are the epoch's end and stay so until the caller asks
    # for the next epoch (a checkpoint reads them there); without, the next epoch is already
    # training. Either way every epoch comes back once, in order, with all its examples.
    from recommender.train.corpus import BatchMaker, Corpus
    from recommender.train.parallel import ProcessTrainer
    from recommender.train.sgns import apply_sgns_batch

    config = TrainConfig(processes=2, sample=0.0, shrink_window=False, **QUICK)
    corpus = Corpus(planted(sessions=3200), config.min_count)
    maker = BatchMaker(config, corpus.vocab, config.dim, 256, config.group_size,
                       config.negatives_per_group())
    rng = np.random.default_rng(0)
    w_in = ((rng.random((len(corpus.vocab), config.dim)) - 0.5) / config.dim).astype(np.float32)
    pool = ProcessTrainer(config, maker, apply_sgns_batch, w_in, np.zeros_like(w_in))
    got, still = [], []
    try:
        for epoch, _, examples in pool.run(corpus.chunks, range(3), corpus.raw_tokens,
                                           3 * corpus.raw_tokens, lambda *a: None,
                                           sync=sync):
            got.append((epoch, examples))
            before = pool.w_out.copy()
            time.sleep(0.2)
            still.append(np.array_equal(before, pool.w_out))
    finally:
        pool.close()
    assert got == [(0, 3200 * 50), (1, 3200 * 50), (2, 3200 * 50)]
    # The pool's record of its units (bench_timeline.py): every token of every epoch, each unit
    # from one of the workers, ending after it started.
    assert sum(u[1] for u in pool.units) == 3 * corpus.raw_tokens
    assert {u[2] for u in pool.units} <= {p.pid for p in pool.procs}
    assert all(u[3] <= u[4] for u in pool.units)
    # The last epoch always ends with a meeting; the others only when asked (without it, the
    # next epoch's units train while the caller holds an epoch's result).
    assert still[-1]
    assert all(still) if sync else not all(still[:-1])
