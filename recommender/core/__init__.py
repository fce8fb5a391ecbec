"""The foundation every stage uses.

Errors, atomic artifact writing and manifests, reading a SESSIONS dir. It imports no stage (nothing
from ``recommender.train``, ``.index``, ``.evaluate``, ``.cli`` or ``pipeline``), so the Beam
pipeline and every stage can depend on it without depending on each other.
"""
