"""``pin2vec``: one command, one sub-command per stage.

Each sub-command is a thin module of this package (sessionize's is the Beam job's own entry point,
:mod:`pipeline.sessions_job`) exposing ``main(argv) -> int`` with its own argparse parser. This
module only dispatches, and turns :class:`~recommender.core.errors.Pin2VecError` into one clear
line and exit status 2 instead of a traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from recommender.core.errors import Pin2VecError

# name -> (module with main(argv), one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "sessionize": ("pipeline.sessions_job", "engagement logs -> SESSIONS dir (Apache Beam)"),
    "split": ("recommender.cli.split", "SESSIONS dir -> earlier / latest SESSIONS dirs by time"),
    "train": ("recommender.cli.train", "SESSIONS dir -> MODEL dir (skip-gram / CBOW, numpy)"),
    "index": ("recommender.cli.index", "MODEL dir -> INDEX dir (exact, HNSW or Annoy)"),
    "cooccurrence": ("recommender.cli.cooccurrence",
                     "SESSIONS dir -> co-occurrence / sequential-rules INDEX dir (Beam)"),
    "related": ("recommender.cli.related", "look up related items in an INDEX dir"),
    "evaluate": ("recommender.cli.evaluate", "next-item HR/MRR/NDCG vs popular and co-occurrence"),
    "tune": ("recommender.cli.tune", "search hyperparameters by validation HR@K"),
    "run": ("recommender.cli.run", "sessionize -> train -> index -> evaluate in one go"),
    "report": ("recommender.cli.report", "RUN dir -> one self-contained HTML report"),
}

USAGE = "usage: pin2vec {" + ",".join(COMMANDS) + "} [options]   (pin2vec COMMAND --help)"


def _help() -> str:
    width = max(map(len, COMMANDS))
    lines = [USAGE, "", "Related items from engagement logs (Pin2Vec).", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "With no options, `pin2vec run` runs every stage on data_samples/"
              " into ./pin2vec-out/."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_help())
        return 0 if argv else 2
    if argv[0] == "--version":
        from importlib.metadata import version

        print(f"pin2vec {version('pin2vec')}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{USAGE}\npin2vec: error: unknown command {name!r}", file=sys.stderr)
        return 2
    # Progress bars and each command's summary are the normal output; PIN2VEC_LOG=INFO adds logs.
    level = os.environ.get("PIN2VEC_LOG", "WARNING").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING),
                        format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except Pin2VecError as e:
        print(f"pin2vec {name}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"pin2vec {name}: error: out of memory; use smaller settings (--dim, --k, "
              "--batch-size) or a machine with more memory", file=sys.stderr)
        return 2
    except OSError as e:  # missing file, no permission, disk full: the environment, not a bug
        print(_one_line(f"pin2vec {name}: error: {e.strerror or e}: {e.filename or ''}"),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pin2vec {name}: interrupted", file=sys.stderr)
        return 130


def _one_line(message: str) -> str:
    """An error message as one terminal-safe line (ids and paths in it may hold anything)."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else
                   f"\\u{ord(ch):04x}" for ch in message)


if __name__ == "__main__":
    sys.exit(main())
