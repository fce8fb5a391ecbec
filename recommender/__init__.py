"""pin2vec's recommender: training, indexing, related-item lookups, evaluation.

One sub-package per stage over a shared foundation (see docs/architecture.md)::

    core/      errors, atomic artifacts and manifests, reading a SESSIONS dir (imports no stage)
    train/     SESSIONS -> MODEL: vectorised numpy skip-gram / CBOW
    index/     MODEL -> INDEX: approximate neighbours and the related-item table
    lookup.py  RelatedItems: the lookup library over an INDEX dir (the front door)
    evaluate/  time splits, baselines, next-item metrics, tuning
    cli/       the `pin2vec` command (imported by nothing)
"""

from recommender.core.errors import ArtifactError, ConfigError, Pin2VecError, TrainingError

__all__ = ["RelatedItems", "Pin2VecError", "ConfigError", "ArtifactError", "TrainingError"]


def __getattr__(name):
    # Lazy so that `import recommender.train` does not pay for Annoy, and the CLI starts fast.
    if name == "RelatedItems":
        from recommender.lookup import RelatedItems

        return RelatedItems
    raise AttributeError(f"module 'recommender' has no attribute {name!r}")
