"""INDEX stage: MODEL dir -> INDEX dir (the related-item table, and the search backend's file).

- :mod:`.build` -- ``build_index(model_dir, output_dir, IndexConfig)``: backend choice (``auto``),
  build, recall calibration to the target, the table, the recall check.
- :mod:`.backends` -- exact, Annoy and HNSW search behind one interface (one file each).
- :mod:`.exact` -- exact top-k by blocked matrix products; recall@k against it.
- :mod:`.table` -- the related-item table of every item (thread pool), and its
  ``neighbors/scores/related`` files.
"""

from recommender.index.build import IndexConfig, build_index

__all__ = ["IndexConfig", "build_index"]
