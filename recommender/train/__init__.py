"""TRAIN stage: SESSIONS dir -> MODEL dir with vectorised numpy skip-gram / CBOW.

- :mod:`.trainer` -- ``train(source, TrainConfig)``: epochs, learning-rate decay, checkpoints.
- :mod:`.corpus` -- vocabulary, subsampling, window pairs and the negatives drawn for each batch.
- :mod:`.sgns` -- the float math of one minibatch (scores, gradients, scatter updates).
- :mod:`.model` -- the MODEL dir: vectors, item ids, manifest; save/load and word2vec export.
- :mod:`.checkpoint`, :mod:`.prefetch` -- crash-safe resume; the batch-preparing producer thread.
"""

from recommender.train.model import Model
from recommender.train.trainer import TrainConfig, train

__all__ = ["Model", "TrainConfig", "train"]
