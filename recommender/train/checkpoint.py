"""Per-epoch training checkpoints inside the output directory, safe against ``kill -9``.

Layout: ``<output>/checkpoint/vectors-<epoch>.npy``, ``context_vectors-<epoch>.npy`` and
``state.json`` naming the epoch. The matrices of epoch *k* are written before ``state.json``
switches to *k* (each file atomically), and the files of epoch *k-1* are deleted only after that,
so whenever the process dies ``state.json`` names matrices that exist in full.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from recommender.core.artifacts import save_npy, write_json
from recommender.core.errors import ArtifactError
from recommender.core.integrity import describe_files, verify_files

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
STATE = "state.json"


def save_checkpoint(out: Path, epoch: int, w_in, w_out, config, vocab, source_digest,
                    epochs: list[dict]) -> None:
    """Record the weights after ``epoch`` completed epochs."""
    ck = Path(out) / CHECKPOINT_DIR
    ck.mkdir(parents=True, exist_ok=True)
    save_npy(ck / f"vectors-{epoch}.npy", w_in)
    save_npy(ck / f"context_vectors-{epoch}.npy", w_out)
    write_json(ck / STATE, {
        "format_version": 1, "kind": "checkpoint", "epoch": epoch, "config": config.to_dict(),
        "vocab_digest": vocab.digest(), "source_digest": source_digest, "epochs": epochs,
        "checksums": describe_files(ck, [f"vectors-{epoch}.npy", f"context_vectors-{epoch}.npy"]),
    })
    for old in ck.glob("*.npy"):
        if not old.name.endswith(f"-{epoch}.npy"):
            old.unlink(missing_ok=True)


def load_checkpoint(out: Path, config, vocab, source_digest, neutral: tuple[str, ...]):
    """``(epoch, w_in, w_out, epochs)`` from ``out``'s checkpoint, or None when there is none.

    Raises :class:`ArtifactError` when the checkpoint belongs to another corpus or config.
    """
    ck = Path(out) / CHECKPOINT_DIR
    path = ck / STATE
    if not path.is_file():
        log.info("no checkpoint in %s: starting from scratch", out)
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("kind") != "checkpoint":
            raise ValueError(f"{path} is not a pin2vec checkpoint")
        epoch = int(state["epoch"])
        verify_files(ck, state, [f"vectors-{epoch}.npy", f"context_vectors-{epoch}.npy"])
        w_in = np.load(ck / f"vectors-{epoch}.npy", allow_pickle=False)
        w_out = np.load(ck / f"context_vectors-{epoch}.npy", allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError,
            ArtifactError) as e:
        raise ArtifactError(f"checkpoint in {ck} is unreadable ({e}); rerun without --resume "
                            "and with --overwrite") from None
    saved = {k: v for k, v in state.get("config", {}).items() if k not in neutral}
    wanted = {k: v for k, v in config.to_dict().items() if k not in neutral}
    diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if diff:
        raise ArtifactError(
            f"checkpoint in {ck} was written with other options ({', '.join(diff)}: "
            f"{[saved.get(k) for k in diff]}); resume with the same options, or start again "
            "with --overwrite instead of --resume")
    if state.get("vocab_digest") != vocab.digest() or state.get("source_digest") != source_digest:
        raise ArtifactError(
            f"checkpoint in {ck} was trained on other sessions; start again with --overwrite "
            "instead of --resume")
    if w_in.shape != (len(vocab), config.dim) or w_out.shape != w_in.shape:
        raise ArtifactError(f"checkpoint matrices in {ck} have the wrong shape {w_in.shape}")
    return epoch, w_in, w_out, list(state.get("epochs", []))


def finished_model(out: Path, config, source_digest, overwrite: bool, neutral: tuple[str, ...]):
    """The finished model in ``out`` if it was trained like this; None if it may be replaced."""
    from recommender.train.model import Model

    done = Model.load(out)
    saved = {k: v for k, v in (done.manifest.get("config") or {}).items() if k not in neutral}
    wanted = {k: v for k, v in config.to_dict().items() if k not in neutral}
    if saved == wanted and done.manifest.get("source_digest") == source_digest:
        log.info("%s already holds the finished model: nothing to resume", out)
        return done
    if overwrite:
        return None
    raise ArtifactError(f"{out} holds a finished model trained with other options or sessions; "
                        "pass --overwrite to replace it")
