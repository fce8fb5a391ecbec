"""The ``pin2vec`` command: one thin module per sub-command, at the edge; no stage imports them."""

from recommender.cli.main import main

__all__ = ["main"]
