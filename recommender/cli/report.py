"""``pin2vec report RUN_DIR``: write the HTML report of a ``pin2vec run`` output directory."""

from __future__ import annotations

import argparse

from recommender.cli.catalog import add_catalog_arguments, catalog_options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pin2vec report",
        description="One self-contained HTML page (opens offline) about a `pin2vec run` output "
        "dir: every scorer's evaluation, head/tail breakdown, training curve, index recall, "
        "vector spread and 2-D map, and an explorer of related items. Parts the dir lacks are "
        "noted on the page.",
    )
    p.add_argument("run_dir", nargs="?", default="pin2vec-out", metavar="RUN_DIR",
                   help="the --output dir of `pin2vec run` (default ./pin2vec-out)")
    p.add_argument("--output", metavar="HTML", help="file to write (default RUN_DIR/report.html)")
    p.add_argument("--catalog", metavar="PATH",
                   help="catalogue for titles and map colours (default: the catalogue the run "
                   "was given, read as the run read it); the --catalog-* flags say how to read "
                   "this one, as for `pin2vec run`")
    add_catalog_arguments(p, attributes=False)
    return p


def main(argv: list[str] | None = None) -> int:
    from recommender.report import write_report

    args = build_parser().parse_args(argv)
    options = catalog_options(args, with_attributes=False).to_dict() if args.catalog else None
    path = write_report(args.run_dir, args.output, args.catalog, options)
    print(f"report written to {path}  (open it in a browser: file://{path.resolve()})")
    return 0
