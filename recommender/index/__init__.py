"""INDEX stage: MODEL dir -> INDEX dir (an approximate-neighbour file plus the related-item table).

- :mod:`.build` -- ``build_index(model_dir, output_dir, IndexConfig)``: ANN build, recall check.
- :mod:`.exact` -- exact neighbours by blocked matrix products; recall@k against them.
- :mod:`.table` -- the related-item table of every item, and its ``neighbors/scores/related`` files.
"""

from recommender.index.build import IndexConfig, build_index

__all__ = ["IndexConfig", "build_index"]
