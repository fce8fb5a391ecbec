"""Import Apache Beam once, without its import-time log noise.

Importing ``apache_beam`` logs a root-level "apitools not found" warning and a BigQuery INFO
line when the optional Google Cloud libraries are absent; neither matters to pin2vec, and both
would land in a user's terminal on every ``pin2vec sessionize``. pin2vec's pipeline modules import
Beam through here.
"""

from __future__ import annotations

import logging

from pipeline import owner  # noqa: F401  (a Beam worker ends with the pin2vec run that started it)

_previous = logging.root.manager.disable
logging.disable(logging.WARNING)
try:
    import apache_beam as beam  # noqa: E402
    from apache_beam.io.filesystem import CompressionTypes  # noqa: E402
    from apache_beam.io.filesystems import FileSystems  # noqa: E402
finally:
    logging.disable(_previous)

_beam_logger = logging.getLogger("apache_beam")
if _beam_logger.level == logging.NOTSET:
    _beam_logger.setLevel(logging.WARNING)

__all__ = ["beam", "CompressionTypes", "FileSystems"]
