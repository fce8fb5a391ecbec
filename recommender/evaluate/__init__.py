"""EVALUATION: time splits, baselines, next-item metrics, model selection and tuning.

- :mod:`.splits` -- the time split of a SESSIONS dir into train / test SESSIONS dirs.
- :mod:`.baselines` -- the baseline scorers (most-popular, co-occurrence, sequential rules,
  item-kNN, EASE), each one shippable; :func:`build` makes any candidate's table.
- :mod:`.scorecard` -- HR/MRR/NDCG at 10 and 20 with the popularity breakdown, on shared pairs.
- :mod:`.next_item` -- evaluate an INDEX dir or model beside the baselines; the verdict.
- :mod:`.select` -- validated model selection for ``pin2vec run``.
- :mod:`.tune` -- budgeted search of training settings and scorers on a validation split.
"""

from recommender.evaluate.baselines import Candidate, baseline_candidates, build
from recommender.evaluate.next_item import baseline_scores, index_score, load_split, verdict
from recommender.evaluate.scorecard import EvalSplit, Score, format_scorecard, score_table

__all__ = ["Candidate", "baseline_candidates", "build", "baseline_scores", "index_score",
           "load_split", "verdict", "EvalSplit", "Score", "format_scorecard", "score_table"]
