"""Trainer end to end: planted clusters, determinism, resume, MODEL dir, word2vec text, CLI."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from recommender import cli
from recommender.cli.train import main
from recommender.core.artifacts import file_digest
from recommender.core.errors import ArtifactError, ConfigError, TrainingError
from recommender.train.model import Model, read_word2vec_text
from recommender.train.trainer import TrainConfig, train
from tests.factories import write_sessions_dir

QUICK = dict(dim=16, epochs=3, progress=False)


def planted(n_clusters=8, size=6, sessions=800, length=8, seed=0):
    """Sessions that each stay inside one cluster of items: c<cluster>_<item>."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(sessions):
        c = rng.integers(n_clusters)
        out.append([f"c{c}_{j}" for j in rng.integers(0, size, length)])
    return out


def purity(model, k=5):
    v = model.vectors / np.linalg.norm(model.vectors, axis=1, keepdims=True)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    nn = np.argsort(-sims, axis=1)[:, :k]
    cluster = np.array([i.split("_")[0] for i in model.item_ids])
    return (cluster[nn] == cluster[:, None]).mean()


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_planted_clusters_come_back_as_neighbours(architecture):
    data = planted(sessions=1600)
    model = train(data, TrainConfig(architecture=architecture, epochs=5, progress=False))
    assert purity(model) >= 0.9
    losses = [e["loss"] for e in model.manifest["epochs"]]
    assert losses[-1] < losses[0]
    assert model.vectors.dtype == np.float32 and model.vectors.shape == (48, 64)


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_whole_session_window_learns_clusters_too(architecture):
    config = TrainConfig(window=0, architecture=architecture, dim=16, epochs=5, progress=False)
    assert purity(train(planted(sessions=1600), config)) >= 0.9


def test_same_seed_is_bit_identical_for_any_worker_count():
    data = planted()
    a = train(data, TrainConfig(workers=1, **QUICK))
    b = train(data, TrainConfig(workers=2, **QUICK))
    c = train(data, TrainConfig(workers=3, seed=1, **QUICK))
    assert np.array_equal(a.vectors, b.vectors) and np.array_equal(a.vectors, c.vectors)
    assert np.array_equal(a.context_vectors, b.context_vectors)
    other = train(data, TrainConfig(seed=2, **QUICK))
    assert not np.array_equal(a.vectors, other.vectors)


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_trainings_in_two_threads_at_once_match_one_alone(architecture):
    """The training step's scratch arrays belong to the calling thread: two models trained at
    once in two threads of one process are bit-identical to each trained alone."""
    import threading

    data = planted(sessions=400)
    configs = [TrainConfig(architecture=architecture, seed=seed, **QUICK) for seed in (1, 2)]
    alone = [train(data, c) for c in configs]
    together = [None, None]

    def run(i):
        together[i] = train(data, configs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, together):
        assert np.array_equal(a.vectors, b.vectors)
        assert np.array_equal(a.context_vectors, b.context_vectors)


def test_callbacks_see_each_epoch_and_can_stop_training():
    seen = []

    def cb(epoch, loss, model):
        seen.append((epoch, loss, model.vectors.shape))
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(planted(), TrainConfig(**QUICK), callbacks=[cb])
    assert [e for e, _, _ in seen] == [1, 2]
    assert all(isinstance(loss, float) and shape == (48, 16) for _, loss, shape in seen)


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    data = planted()
    config = TrainConfig(**QUICK)
    full = train(data, config, output_dir=tmp_path / "full")

    def crash(epoch, loss, model):
        if epoch == 2:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        train(data, config, callbacks=[crash], output_dir=tmp_path / "m")
    assert not (tmp_path / "m" / "manifest.json").exists()
    with pytest.raises(ArtifactError, match="not empty"):
        train(data, config, output_dir=tmp_path / "m")
    with pytest.raises(ArtifactError, match="other options"):
        train(data, TrainConfig(**{**QUICK, "dim": 8}), output_dir=tmp_path / "m", resume=True)
    resumed = train(data, TrainConfig(**{**QUICK, "workers": 1}), output_dir=tmp_path / "m",
                    resume=True)
    assert np.array_equal(resumed.vectors, full.vectors)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(
        ["vectors.npy", "context_vectors.npy", "items.parquet", "manifest.json"])
    assert [e["epoch"] for e in resumed.manifest["epochs"]] == [1, 2, 3]
    again = train(data, config, output_dir=tmp_path / "m", resume=True)  # finished: loads it
    assert np.array_equal(again.vectors, full.vectors)
    with pytest.raises(ArtifactError, match="finished model"):
        train(data, TrainConfig(**{**QUICK, "seed": 5}), output_dir=tmp_path / "m", resume=True)


def test_resume_after_kill_9_in_a_subprocess(tmp_path):
    sessions = write_sessions_dir(tmp_path / "s", planted())
    script = textwrap.dedent(f"""
        import os, signal
        from recommender.train.trainer import TrainConfig, train
        def kill(epoch, loss, model):
            if epoch == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        train({str(sessions)!r}, TrainConfig(dim=16, epochs=3, progress=False),
              callbacks=[kill], output_dir={str(tmp_path / "m")!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd())
    assert proc.returncode == -9
    assert main(["--sessions", str(sessions), "--output", str(tmp_path / "m"), "--dim", "16",
                 "--epochs", "3", "--resume", "--quiet"]) == 0
    full = train(sessions, TrainConfig(**QUICK))
    assert np.array_equal(Model.load(tmp_path / "m").vectors, full.vectors)


def test_sessions_dir_source_matches_in_memory_sequences(tmp_path):
    data = planted()
    sessions = write_sessions_dir(tmp_path / "s", data)
    from_dir = train(sessions, TrainConfig(**QUICK))
    from_list = train(data, TrainConfig(**QUICK))
    assert np.array_equal(from_dir.vectors, from_list.vectors)
    assert from_dir.manifest["source_digest"] == file_digest(sessions / "manifest.json")
    assert from_list.manifest["source_digest"] is None


def test_long_sessions_are_trained_to_the_end():
    session = [f"i{k}" for k in range(12_000)]
    model = train([session], TrainConfig(window=1, sample=0, epochs=1, dim=8, progress=False))
    assert len(model.item_ids) == 12_000
    assert np.all(np.abs(model.context_vectors).sum(axis=1) > 0)  # every item was a target


def test_save_load_round_trip_and_model_dir_contents(tmp_path):
    model = train(planted(), TrainConfig(**QUICK))
    model.save(tmp_path / "m", export_word2vec=True)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(
        ["vectors.npy", "context_vectors.npy", "items.parquet", "manifest.json", "vectors.txt"])
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["kind"] == "model"
    assert manifest["vocab_size"] == 48 and manifest["dim"] == 16 and manifest["seed"] == 1
    assert manifest["config"]["architecture"] == "skipgram" and manifest["config"]["dim"] == 16
    assert len(manifest["epochs"]) == 3 and manifest["words_per_second"] > 0
    loaded = Model.load(tmp_path / "m")
    assert loaded.item_ids == model.item_ids
    assert np.array_equal(loaded.vectors, model.vectors)
    assert np.array_equal(loaded.context_vectors, model.context_vectors)
    assert loaded.counts.tolist() == model.counts.tolist() and loaded.counts.sum() == 6400
    with pytest.raises(ArtifactError, match="overwrite"):
        model.save(tmp_path / "m")
    related = loaded.most_similar(model.item_ids[0], 3)
    assert len(related) == 3 and model.item_ids[0] not in [i for i, _ in related]
    with pytest.raises(KeyError, match="nope"):
        loaded.most_similar("nope")


def test_word2vec_text_round_trip(tmp_path):
    model = train(planted(), TrainConfig(**QUICK))
    model.save(tmp_path / "m", export_word2vec=True)
    ids, vectors = read_word2vec_text(tmp_path / "m" / "vectors.txt")
    assert ids == model.item_ids
    np.testing.assert_array_equal(vectors, model.vectors)  # %.9g round-trips float32 exactly
    gensim_models = pytest.importorskip("gensim.models")
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(tmp_path / "m" / "vectors.txt"))
    assert kv.index_to_key == model.item_ids
    np.testing.assert_array_equal(kv.vectors, model.vectors)


def test_word2vec_export_refuses_ids_with_spaces(tmp_path):
    model = train([["a b", "c"]] * 5, TrainConfig(**QUICK))
    with pytest.raises(ArtifactError, match="whitespace"):
        model.save(tmp_path / "m", export_word2vec=True)
    with pytest.raises(ArtifactError, match="whitespace"):  # before training, not after
        train([["a b", "c"]] * 5, TrainConfig(**QUICK), output_dir=tmp_path / "n",
              export_word2vec=True)


@pytest.mark.parametrize("bad, match", [
    (dict(architecture="glove"), "skipgram"),
    (dict(dim=0), "dim"),
    (dict(window=-1), "window"),
    (dict(negative=0), "negative"),
    (dict(sample=1.5), "sample"),
    (dict(alpha=0), "alpha"),
    (dict(min_alpha=0.5), "min_alpha"),
    (dict(epochs=2.5), "epochs"),
    (dict(workers=0), "workers"),
    (dict(batch_size=8, group_size=64), "batch_size"),
    (dict(ns_exponent=float("nan")), "ns_exponent"),
    (dict(shared_negatives=0), "shared_negatives"),
])
def test_config_validation_says_what_is_wrong(bad, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**bad)


def test_shared_draws_by_default_carry_at_most_ten_examples_each():
    # groups of 16: negative 5 -> 8 draws (10 examples' worth each), negative 10 -> 16 draws,
    # negative 1 -> 2; an explicit shared_negatives wins
    assert TrainConfig().negatives_per_group() == 8
    assert TrainConfig(negative=10).negatives_per_group() == 16
    assert TrainConfig(negative=1).negatives_per_group() == 2
    assert TrainConfig(negative=10, group_size=4).negatives_per_group() == 4
    assert TrainConfig(negative=10, shared_negatives=8).negatives_per_group() == 8


def test_negative_and_zero_ns_exponent_are_allowed():
    TrainConfig(ns_exponent=-0.5)
    TrainConfig(ns_exponent=0.0)


def test_nan_loss_stops_with_advice(monkeypatch):
    monkeypatch.setattr("recommender.train.trainer.apply_sgns_batch", lambda *a: float("nan"))
    with pytest.raises(TrainingError, match="lower --alpha"):
        train(planted(), TrainConfig(**QUICK))


def test_cli_writes_model_dir(tmp_path, capsys):
    sessions = write_sessions_dir(tmp_path / "s", planted(), shards=2)
    out = tmp_path / "m"
    argv = ["train", "--sessions", str(sessions), "--output", str(out), "--dim", "8",
            "--epochs", "2", "--architecture", "cbow", "--window", "3", "--negative", "3",
            "--ns-exponent", "0.5", "--sample", "0", "--min-count", "1", "--alpha", "0.05",
            "--min-alpha", "0.001", "--seed", "7", "--workers", "1", "--export-word2vec",
            "--quiet", "--batch-size", "512", "--no-shrink-window"]
    assert cli.main(argv) == 0
    manifest = Model.load(out).manifest
    assert manifest["config"]["architecture"] == "cbow" and manifest["config"]["seed"] == 7
    assert manifest["config"]["shrink_window"] is False and manifest["batch_size"] == 512
    assert (out / "vectors.txt").is_file()
    assert cli.main(argv) == 2  # refuses to overwrite
    assert "overwrite" in capsys.readouterr().err
    assert cli.main(argv + ["--overwrite"]) == 0
    assert cli.main(["train", "--sessions", str(sessions), "--output", str(out), "--dim", "0",
                     "--overwrite"]) == 2


def test_config_from_args_layers_defaults_base_and_flags():
    import argparse

    from recommender.cli.train import add_config_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_config_arguments(p)
    config = config_from_args(p.parse_args(["--dim", "8", "--no-shrink-window"]),
                              base={"dim": 32, "epochs": 7}, progress=False)
    assert (config.dim, config.epochs, config.shrink_window, config.window) == (8, 7, False, 5)
    with pytest.raises(ConfigError, match="unknown training settings"):
        config_from_args(p.parse_args([]), base={"dims": 3})
