"""pin2vec's recommender: skip-gram training, Annoy indexing, related-item lookups, evaluation."""

from recommender.errors import ArtifactError, ConfigError, Pin2VecError, TrainingError

__all__ = ["RelatedItems", "Pin2VecError", "ConfigError", "ArtifactError", "TrainingError"]


def __getattr__(name):
    # Lazy so that `import recommender.train` does not pay for Annoy, and the CLI starts fast.
    if name == "RelatedItems":
        from recommender.lookup import RelatedItems

        return RelatedItems
    raise AttributeError(f"module 'recommender' has no attribute {name!r}")
