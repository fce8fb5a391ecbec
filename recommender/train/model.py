"""A trained model: item vectors, their row order, and the MODEL dir (docs/architecture.md).

``vectors.npy`` and ``context_vectors.npy`` (float32 [V, d]), ``items.parquet`` (``item_id``,
``count``) and ``manifest.json`` (written last); optionally ``vectors.txt`` in the word2vec C text
format. Nothing is pickled; :meth:`Model.load` reads with ``allow_pickle=False``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recommender.core.artifacts import (
    atomic_write,
    prepare_output_dir,
    read_manifest,
    save_npy,
    write_manifest,
    write_parquet,
)
from recommender.core.errors import ArtifactError
from recommender.core.integrity import verify_files

log = logging.getLogger(__name__)

MODEL_KIND = "model"
MODEL_FILES = ("vectors.npy", "context_vectors.npy", "items.parquet")
FORMAT_VERSION = 1
# Mean cosine of random item pairs above which the vectors count as collapsed onto one direction:
# cosine scores are then squeezed towards 1 and nearest neighbours are mostly noise.
COLLAPSED_COSINE = 0.8


def mean_pair_cosine(vectors: np.ndarray, pairs: int = 4096, seed: int = 0) -> float:
    """Mean cosine of ``pairs`` random pairs of distinct rows (rows of zeros count as 0).

    Near 0: the vectors spread over the space; near 1: they share one direction (collapsed).
    Deterministic for a given ``seed``.
    """
    if len(vectors) < 2:
        return 0.0
    vectors = np.asarray(vectors)
    rng = np.random.default_rng(seed)
    i = rng.integers(len(vectors), size=pairs)
    j = (i + rng.integers(1, len(vectors), size=pairs)) % len(vectors)  # never i itself

    def unit(rows):  # only the sampled rows, in float64 (the whole matrix cost 0.13 s at 50k)
        v = vectors[rows].astype(np.float64)
        norms = np.linalg.norm(v, axis=1)
        return v / np.where(norms > 0, norms, 1.0)[:, None]

    return float(np.einsum("nd,nd->n", unit(i), unit(j)).mean())


def collapse_advice(cosine: float) -> str | None:
    """A one-line warning with what to try when ``cosine`` says the vectors collapsed, else None."""
    if not cosine > COLLAPSED_COSINE:
        return None
    return (f"item vectors have collapsed towards one direction (mean cosine of random item pairs "
            f"{cosine:.2f} > {COLLAPSED_COSINE}): cosine scores are squeezed towards 1 and "
            "related items are unreliable; try a lower --sample (1e-4, 1e-5), a lower "
            "--ns-exponent (0 or -0.5), a larger --negative (10-15) or a smaller --batch-size")


class Model:
    """Input/output item vectors with their ids and counts, plus the training manifest.

    Attributes
    ----------
    vectors : ndarray, float32 [V, d]
        Input ("word") vectors: the ones to use for similarity.
    context_vectors : ndarray, float32 [V, d]
        Output ("context") vectors of negative sampling.
    item_ids : list of str
        Item id of each row.
    counts : ndarray, int64 [V]
        Occurrences of each item in the training corpus.
    manifest : dict
        Everything ``manifest.json`` holds (config, seed, per-epoch loss and words/s, digests).
    """

    def __init__(self, vectors, context_vectors, item_ids, counts, manifest=None):
        self.vectors = vectors
        self.context_vectors = context_vectors
        self.item_ids = list(item_ids)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.manifest = manifest if manifest is not None else {}
        self.attributes = None  # AttributeVectors when trained with a catalogue (cold start)
        self._index: dict[str, int] | None = None

    def __repr__(self) -> str:
        return f"Model(vocab_size={len(self.item_ids)}, dim={self.vectors.shape[1]})"

    def row(self, item_id: str) -> int:
        """Row of ``item_id``; raises ``KeyError`` naming the id when it is unknown."""
        if self._index is None:
            self._index = {item: i for i, item in enumerate(self.item_ids)}
        try:
            return self._index[item_id]
        except KeyError:
            raise KeyError(
                f"item {item_id!r} is not in the model ({len(self.item_ids):,} items); it was "
                "absent from the training sessions or under --min-count"
            ) from None

    def most_similar(self, item_id: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` items most cosine-similar to ``item_id``, best first, never itself."""
        norms = np.linalg.norm(self.vectors, axis=1)
        norms[norms == 0] = 1.0
        i = self.row(item_id)
        scores = (self.vectors @ self.vectors[i]) / (norms * norms[i])
        scores[i] = -np.inf
        k = min(k, len(scores) - 1)
        top = np.argpartition(-scores, k)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]
        return [(self.item_ids[j], float(scores[j])) for j in top[:k]]

    def save(self, directory, export_word2vec: bool = False, overwrite: bool = False) -> Path:
        """Write a MODEL directory (manifest last); a non-empty one only with ``overwrite``."""
        directory = prepare_output_dir(directory, overwrite, kind=MODEL_KIND)
        self._write(directory, export_word2vec)
        return directory

    def _write(self, directory: Path, export_word2vec: bool = False) -> None:
        directory = Path(directory)
        save_npy(directory / "vectors.npy", self.vectors.astype(np.float32, copy=False))
        save_npy(
            directory / "context_vectors.npy", self.context_vectors.astype(np.float32, copy=False)
        )
        items = pa.table(
            {
                "item_id": pa.array(self.item_ids, pa.string()),
                "count": pa.array(self.counts, pa.int64()),
            }
        )
        write_parquet(directory / "items.parquet", items)
        if export_word2vec:
            write_word2vec_text(directory / "vectors.txt", self.item_ids, self.vectors)
        manifest = dict(self.manifest)
        attribute_files = []
        if self.attributes is not None:  # before the manifest, which marks a complete dir
            attribute_files = self.attributes.write(directory)
            manifest["attributes"] = {"files": attribute_files, "values": len(self.attributes)}
        manifest.update(
            format_version=FORMAT_VERSION,
            kind=MODEL_KIND,
            vocab_size=len(self.item_ids),
            dim=int(self.vectors.shape[1]),
        )
        files = ["vectors.npy", "context_vectors.npy", "items.parquet"]
        files += ["vectors.txt"] if export_word2vec else []
        files += attribute_files  # checksummed like the rest
        manifest.pop("checksums", None)
        write_manifest(directory, {"format_version": FORMAT_VERSION, "kind": MODEL_KIND,
                                   **manifest}, files)

    @classmethod
    def load(cls, directory, verify: bool = True) -> Model:
        """Read a MODEL directory written by :meth:`save` (or any writer of the contract).

        Every file's size and digest is checked against the manifest first (``verify=False``
        checks sizes only); a damaged file is an :class:`ArtifactError` naming it.
        """
        directory = Path(directory)
        manifest = read_manifest(directory, MODEL_KIND)
        verify_files(directory, manifest, MODEL_FILES, digests=verify)
        try:
            vectors = np.load(directory / "vectors.npy", allow_pickle=False)
            context = np.load(directory / "context_vectors.npy", allow_pickle=False)
            items = pq.read_table(directory / "items.parquet", columns=["item_id", "count"])
        except (OSError, ValueError, EOFError, pa.ArrowException, KeyError) as e:
            raise ArtifactError(f"cannot read model in {directory}: {e}") from None
        ids = items.column("item_id").to_pylist()
        if vectors.ndim != 2 or vectors.shape != context.shape or vectors.shape[0] != len(ids):
            raise ArtifactError(
                f"{directory}: vectors {vectors.shape}, context_vectors {context.shape} and "
                f"{len(ids)} items do not match; re-run pin2vec train"
            )
        counts = items.column("count").to_numpy(zero_copy_only=False)
        model = cls(vectors, context, ids, counts, manifest)
        if manifest.get("attributes"):
            from recommender.core.attributes import AttributeVectors

            names = manifest["attributes"].get("files") if isinstance(
                manifest["attributes"], dict) else None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ArtifactError(f"{directory}: manifest attributes.files is {names!r}, "
                                    "expected a list of file names; re-run pin2vec train")
            verify_files(directory, manifest, names, digests=verify)  # checksummed like the rest
            model.attributes = AttributeVectors.load(directory)
            recent = model.attributes.recent
            if recent is not None and len(recent) != len(ids):
                raise ArtifactError(f"{directory}: attribute_popularity.npy has {len(recent)} "
                                    f"rows for {len(ids)} items; re-run pin2vec train")
        return model


def write_word2vec_text(path, item_ids: list[str], vectors: np.ndarray) -> None:
    """Write the word2vec C text format: ``V d``, then ``id v1 ... vd`` per row (9 digits).

    Raises :class:`ArtifactError` if an id contains whitespace, which the format cannot represent.
    """
    check_word2vec_ids(item_ids)
    vectors = np.asarray(vectors, dtype=np.float32)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{vectors.shape[0]} {vectors.shape[1]}\n")
            fmt = " ".join(["%.9g"] * vectors.shape[1])
            for start in range(0, len(item_ids), 4096):
                block = vectors[start:start + 4096].astype(np.float64)
                f.writelines(
                    f"{item} {fmt % tuple(row)}\n"
                    for item, row in zip(item_ids[start:start + 4096], block.tolist())
                )

    atomic_write(Path(path), write)


def check_word2vec_ids(item_ids) -> None:
    """Raise :class:`ArtifactError` if an id cannot be written in the word2vec text format."""
    bad = next((i for i in item_ids if not i or any(c.isspace() for c in i)), None)
    if bad is not None:
        raise ArtifactError(
            f"item id {bad!r} is empty or contains whitespace, which the word2vec text format "
            "cannot hold; use vectors.npy + items.parquet instead of --export-word2vec"
        )


def read_word2vec_text(path) -> tuple[list[str], np.ndarray]:
    """Parse a word2vec C text file into ``(ids, float32 [V, d])`` (for tests and tools)."""
    with open(path, encoding="utf-8") as f:
        v, d = map(int, f.readline().split())
        ids, rows = [], []
        for line in f:
            parts = line.rstrip("\n").split(" ")
            ids.append(parts[0])
            rows.append([float(x) for x in parts[1:]])
    vectors = np.array(rows, dtype=np.float32).reshape(len(rows), d)
    if len(ids) != v:
        raise ArtifactError(f"{path} announces {v} vectors but holds {len(ids)}")
    return ids, vectors
