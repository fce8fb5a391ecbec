"""Exceptions that carry a message meant for the person running pin2vec.

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class Pin2VecError(Exception):
    """A problem the user can act on: bad option, missing input, corrupt artifact."""


class ConfigError(Pin2VecError, ValueError):
    """An invalid configuration value (raised from dataclass ``__post_init__``)."""


class ArtifactError(Pin2VecError):
    """A SESSIONS/MODEL/INDEX directory is missing, incomplete, corrupt or of another version."""


class TrainingError(Pin2VecError):
    """Training diverged (NaN/inf loss) or cannot proceed."""
