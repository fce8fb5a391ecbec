"""``pin2vec train``: SESSIONS dir -> MODEL dir, and the training flags other commands share."""

from __future__ import annotations

import argparse

from recommender.cli.catalog import add_catalog_arguments, training_attributes
from recommender.core.errors import ConfigError
from recommender.train import TrainConfig, train
from recommender.train.model import collapse_advice


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """Add the training flags (every :class:`TrainConfig` field but ``progress``) to ``p``.

    Defaults are None so :func:`config_from_args` can tell given flags from omitted ones.
    """
    d = TrainConfig()
    p.add_argument("--architecture", choices=["skipgram", "cbow"],
                   help="skipgram predicts each context item from an item (default); cbow "
                   "predicts an item from the mean of its context")
    p.add_argument("--dim", type=int, help=f"vector size ({d.dim})")
    p.add_argument("--window", type=int,
                   help=f"max distance of a context item; 0 = the whole session ({d.window})")
    p.add_argument("--no-shrink-window", action="store_true", default=None,
                   help="use every pair in the window instead of word2vec's random shrinking")
    p.add_argument("--negative", type=int, help=f"negative samples per example ({d.negative})")
    p.add_argument("--ns-exponent", type=float,
                   help="negatives drawn ~ count**x; 0 uniform, < 0 favours rare items "
                   f"({d.ns_exponent})")
    p.add_argument("--sample", type=float,
                   help=f"subsampling threshold for frequent items, 0 disables ({d.sample:g})")
    p.add_argument("--min-count", type=int, help=f"drop items seen fewer times ({d.min_count})")
    p.add_argument("--epochs", type=int, help=f"passes over the sessions ({d.epochs})")
    p.add_argument("--alpha", type=float, help=f"initial learning rate ({d.alpha})")
    p.add_argument("--min-alpha", type=float,
                   help=f"learning rate reached at the end, decaying linearly ({d.min_alpha})")
    p.add_argument("--seed", type=int, help=f"random seed; same seed = same vectors ({d.seed})")
    p.add_argument("--workers", type=int,
                   help=f"threads: 1 = single thread, 2 = prepare batches while computing "
                   f"({d.workers}); does not change the result")
    p.add_argument("--processes", type=int,
                   help=f"processes that train on shared weights ({d.processes}). N > 1 runs the "
                   "float math on N cores (threads cannot: numpy's scatter-add holds the GIL), "
                   "but like gensim with several workers the vectors then vary slightly from run "
                   "to run; 1 gives the same vectors for the same seed. Not with "
                   "--catalog-attributes")
    p.add_argument("--batch-size", type=int,
                   help="pairs per minibatch, for each process (default: tokens/32, fewer on "
                   "a heavy popularity head, within 256..2048); smaller is closer to "
                   "word2vec's plain SGD; larger has less overhead per batch until its rows "
                   "outgrow the CPU cache (about 2,048 pairs)")


def config_from_args(args: argparse.Namespace, base: dict | None = None,
                     progress: bool = True) -> TrainConfig:
    """A :class:`TrainConfig` from defaults, then ``base`` (field names), then the given flags."""
    defaults = TrainConfig().to_dict()
    unknown = sorted(set(base or {}) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown training settings {unknown}; known: {sorted(defaults)}")
    values = {**defaults, **(base or {}), "progress": progress}
    for name in values:
        flag = getattr(args, name, None)
        if flag is not None:
            values[name] = flag
    if getattr(args, "no_shrink_window", None):
        values["shrink_window"] = False
    return TrainConfig(**values)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pin2vec train",
        description="Learn item vectors from a SESSIONS dir with skip-gram/CBOW and negative "
        "sampling; write a MODEL dir.")
    p.add_argument("--sessions", required=True, help="SESSIONS dir written by pin2vec sessionize")
    p.add_argument("--output", required=True, help="MODEL dir to write")
    add_config_arguments(p)
    p.add_argument("--export-word2vec", action="store_true",
                   help="also write vectors.txt in the word2vec C text format (gensim reads it)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --output after an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--catalog", help="catalogue file; with --catalog-attributes, also learn "
                   "attribute vectors for cold items")
    add_catalog_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """``pin2vec train``: SESSIONS dir -> MODEL dir. Returns the exit status."""
    args = _parser().parse_args(argv)
    config = config_from_args(args, progress=not args.quiet)
    model = train(args.sessions, config, output_dir=args.output, resume=args.resume,
                  overwrite=args.overwrite, export_word2vec=args.export_word2vec,
                  attributes=training_attributes(args))
    epochs = model.manifest.get("epochs") or [{}]
    print(f"wrote {args.output}: {len(model.item_ids):,} items x {config.dim} dims, "
          f"final loss {epochs[-1].get('loss', float('nan')):.4f}, "
          f"{model.manifest.get('words_per_second') or 0:,.0f} words/s, "
          f"mean random-pair cosine {model.manifest.get('mean_pair_cosine', float('nan')):.2f}")
    advice = collapse_advice(model.manifest.get("mean_pair_cosine", 0.0))
    if advice:
        print(f"warning: {advice}")
    return 0
