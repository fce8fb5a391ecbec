"""EVALUATION: time splits, baselines, next-item metrics and hyperparameter tuning.

- :mod:`.splits` -- the time split of a SESSIONS dir into train / test SESSIONS dirs.
- :mod:`.baselines` -- most-popular and co-occurrence counts from the training sessions.
- :mod:`.next_item` -- HR/MRR/NDCG@K of any recommender on held-out next-item pairs; the verdict.
- :mod:`.tune` -- budgeted search of training settings, scored on a validation split.
"""

from recommender.evaluate.next_item import (
    EvalData,
    Recommender,
    Result,
    baselines,
    evaluate,
    index_recommender,
    load_eval_data,
    model_recommender,
)

__all__ = ["EvalData", "Recommender", "Result", "baselines", "evaluate", "index_recommender",
           "load_eval_data", "model_recommender"]
