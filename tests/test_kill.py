"""``kill -9`` of each stage: no process outlives it, nothing half-written loads, the same command
run again succeeds (without --overwrite: an interrupted run's own output is replaced)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from recommender import RelatedItems
from recommender.cli import main as cli
from recommender.core.artifacts import OUTPUT_MARKER
from recommender.core.errors import ArtifactError
from recommender.core.sessions import read_sessions_manifest
from recommender.train import Model
from tests.factories import write_model_dir, write_sessions_dir

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")


def _tagged(tag: str) -> list[int]:
    """Pids of live processes whose environment carries ``tag`` (the stage and its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if tag.encode() in (entry / "environ").read_bytes():
                status = (entry / "status").read_text()
                if "\nState:\tZ" not in status:  # a zombie is dead, only not yet reaped
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def kill_when(argv: list[str], ready, timeout: float = 60.0, grace: float = 0.3) -> None:
    """Start ``pin2vec argv``, ``kill -9`` it once ``ready()`` holds, check nothing survives.

    ``grace``: seconds the stage's children may take to notice and exit (Beam's SDK workers end
    when their control channel closes)."""
    tag = f"PIN2VEC_KILL_TEST={uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), tag.split("=")[0]: tag.split("=")[1]}
    proc = subprocess.Popen([sys.executable, "-m", "recommender.cli.main", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"pin2vec {argv[0]} ended before it could be killed"
            assert time.monotonic() < deadline, f"pin2vec {argv[0]} never got ready"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        end = time.monotonic() + grace
        while (survivors := _tagged(tag)) and time.monotonic() < end:
            time.sleep(0.1)
        assert survivors == [], f"processes outlived pin2vec {argv[0]}: {survivors}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _tagged(tag):  # only ever processes this test started
            os.kill(pid, signal.SIGKILL)


def test_kill_sessionize(tmp_path, capsys):
    rng = np.random.default_rng(0)
    logs = tmp_path / "logs"
    logs.mkdir()
    n = 5_000
    times = np.sort(rng.integers(0, 10**6, n))
    lines = [f"u{u},i{i},{1_700_000_000 + t}" for u, i, t in
             zip(rng.integers(0, 2000, n), rng.integers(0, 3000, n), times)]
    (logs / "events.csv").write_text("user_id,item_id,timestamp\n" + "\n".join(lines) + "\n")
    hostile = [json.dumps({"user_id": f"u{i}", "item_id": f"i{i}", "timestamp": 1_700_000_000 + i})
               for i in range(2000)]
    hostile[3] = '{"user_id": "u3", "item_id": "\\ud800x", "timestamp": 1700000003}'
    packed = gzip.compress(("\n".join(hostile) + "\n").encode())
    (logs / "more.jsonl.gz").write_bytes(packed[: len(packed) // 2])  # cut: truncated_file
    out = tmp_path / "S"
    argv = ["sessionize", "--input", str(logs), "--output", str(out), "--quiet", "--buckets", "2"]
    kill_when(argv, lambda: (out / OUTPUT_MARKER).exists())
    with pytest.raises(ArtifactError):
        read_sessions_manifest(out)
    assert cli(argv) == 0, capsys.readouterr().err
    counts = read_sessions_manifest(out)["counts"]
    assert counts["read"] == counts["valid"] + sum(counts["rejected"].values())
    assert counts["rejected"]["truncated_file"] == 1 and counts["rejected"]["bad_encoding"] == 1
    assert n < counts["read"] < n + 2000
    assert (logs / "events.csv").exists() and (logs / "more.jsonl.gz").exists()


@pytest.mark.parametrize("processes", [1, 2])
def test_kill_train_then_resume(tmp_path, capsys, processes):
    # With 2, the forked training processes must end too: each checks every 0.2 s that its
    # parent lives (hence the grace).
    rng = np.random.default_rng(1)
    sessions = [[f"i{j}" for j in rng.integers(0, 400, 8)] for _ in range(3000)]
    source = write_sessions_dir(tmp_path / "S", sessions)
    out = tmp_path / "M"
    argv = ["train", "--sessions", str(source), "--output", str(out), "--epochs", "4",
            "--dim", "8", "--quiet", "--processes", str(processes)]
    kill_when(argv, lambda: (out / "checkpoint" / "state.json").exists(), grace=1.0)
    with pytest.raises(ArtifactError):
        Model.load(out)
    assert cli(argv) == 2  # a checkpoint is there: resume it or start again, never silently
    assert "--resume" in capsys.readouterr().err
    assert cli([*argv, "--resume"]) == 0, capsys.readouterr().err
    model = Model.load(out)
    assert model.vectors.shape == (400, 8) and model.manifest["config"]["processes"] == processes
    assert not (out / "checkpoint").exists() and not any(out.glob(".*.tmp"))


HALF_WRITTEN_UNIT = """
import os, struct, time
import numpy as np
from recommender.train.corpus import BatchMaker, Corpus
from recommender.train.parallel import ProcessTrainer
from recommender.train.sgns import apply_sgns_batch
from recommender.train.trainer import TrainConfig

config = TrainConfig(dim=8, processes=2, progress=False)
corpus = Corpus([["a", "b", "c"]] * 20, 1)
maker = BatchMaker(config, corpus.vocab, 8, 256, config.group_size, config.negatives_per_group())
w = np.zeros((len(corpus.vocab), 8), np.float32)
pool = ProcessTrainer(config, maker, apply_sgns_batch, w, w.copy())
# What a parent killed while writing a unit leaves in the pipe: a message header announcing
# 1,000 bytes and 10 of them. A worker reads it and waits for the rest, which never comes.
os.write(pool.tasks._writer.fileno(), struct.pack("!i", 1000) + b"x" * 10)
time.sleep(0.5)
os._exit(9)
"""


def test_a_worker_ends_with_its_parent_even_inside_a_half_written_unit():
    # The workers hold the pipe's write end too, so the reader never sees the end of the file;
    # it used to wait forever (4 of 30 `kill -9`s of `train --processes 2` under load).
    tag = f"PIN2VEC_KILL_TEST={uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), tag.split("=")[0]: tag.split("=")[1]}
    try:
        proc = subprocess.run([sys.executable, "-c", HALF_WRITTEN_UNIT], env=env, timeout=60)
        assert proc.returncode == 9
        end = time.monotonic() + 1.0
        while (survivors := _tagged(tag)) and time.monotonic() < end:
            time.sleep(0.05)
        assert survivors == [], f"training processes outlived their parent: {survivors}"
    finally:
        for pid in _tagged(tag):  # only ever processes this test started
            os.kill(pid, signal.SIGKILL)


def test_kill_index(tmp_path, capsys):
    rng = np.random.default_rng(2)
    model = write_model_dir(tmp_path / "M", [f"i{j}" for j in range(3000)],
                            rng.normal(size=(3000, 8)))
    out = tmp_path / "I"
    argv = ["index", "--model", str(model), "--output", str(out), "--k", "10", "--quiet"]
    kill_when(argv, lambda: (out / "items.parquet").exists())
    with pytest.raises(ArtifactError):
        RelatedItems.load(out)
    assert cli(argv) == 0, capsys.readouterr().err
    assert len(RelatedItems.load(out)) == 3000
    assert not any(out.glob(".*.tmp")) and not any(out.glob(".table-*"))


def test_kill_cooccurrence(tmp_path, capsys):
    rng = np.random.default_rng(4)
    sessions = [[f"i{j}" for j in rng.integers(0, 2000, 10)] for _ in range(8000)]
    source = write_sessions_dir(tmp_path / "S", sessions)
    out = tmp_path / "C"
    argv = ["cooccurrence", "--sessions", str(source), "--output", str(out), "--k", "10"]
    kill_when(argv, lambda: (out / OUTPUT_MARKER).exists())  # the Beam job has started
    with pytest.raises(ArtifactError):
        RelatedItems.load(out)
    assert cli(argv) == 0, capsys.readouterr().err  # the same command: the run's own leftovers go
    assert len(RelatedItems.load(out)) == 2000
    assert not any(out.glob(".*.tmp"))


def test_a_beam_worker_ends_with_the_pin2vec_process_that_started_it(tmp_path):
    # Beam's multi-process runner starts SDK workers of its own, which would outlive a kill -9 of
    # pin2vec by minutes. They import pipeline/ (to run its transforms), which watches the owner.
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PIN2VEC_OWNER_PID": str(owner.pid)}
    worker = subprocess.Popen([sys.executable, "-c", "import pipeline._beam, time; time.sleep(60)"],
                              env=env)
    try:
        time.sleep(2.0)  # imported and watching
        assert worker.poll() is None, "the worker must live while its owner does"
        owner.kill()
        owner.wait(10)
        assert worker.wait(10) == 1  # ends within about a second of the owner
    finally:
        for proc in (owner, worker):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
