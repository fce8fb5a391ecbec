"""Catalogue flags shared by ``train``, ``related`` and ``run`` (read through recommender.core)."""

from __future__ import annotations

import argparse

from recommender.core.catalog import READING, CatalogOptions, parse_attribute_specs, read_catalog
from recommender.core.errors import ConfigError


def add_catalog_arguments(p: argparse.ArgumentParser, attributes: bool = True) -> None:
    """``--catalog`` and how to read it; with ``attributes`` also the attribute training flags."""
    d = CatalogOptions()
    g = p.add_argument_group("catalogue")
    g.add_argument("--catalog-format", choices=["auto", "parquet", "csv", "jsonl"],
                   default="auto", help="catalogue format (default: by extension)")
    g.add_argument("--catalog-delimiter",
                   help="CSV field delimiter (default: tab for .tsv, else sniffed)")
    g.add_argument("--catalog-encoding", default=d.encoding,
                   help="catalogue text encoding, e.g. latin-1 (default utf-8)")
    g.add_argument("--catalog-no-header", action="store_true",
                   help="the CSV has no header line (name the columns with --catalog-columns)")
    g.add_argument("--catalog-columns", help="CSV column names a,b,c (replace the header)")
    g.add_argument("--catalog-id-column", default=d.id_column, help="item id column (item_id)")
    g.add_argument("--catalog-title-column", default=d.title_column,
                   help="title column (title)")
    if not attributes:
        return
    g.add_argument("--catalog-attributes",
                   help="attribute columns to learn vectors for, e.g. "
                   "'brand,genres:multi,price:numeric' (kinds: categorical, multi, numeric, "
                   "flag = a yes/no column such as one genre of u.item: 1 is a value, 0 none)")
    g.add_argument("--catalog-separator", default=d.separator,
                   help="separator of multi-valued fields (default |)")
    g.add_argument("--catalog-buckets", type=int, default=d.buckets,
                   help="quantile buckets of numeric attributes (default 5)")
    g.add_argument("--attribute-mode", choices=["mean", "each"], default=None,
                   help="mean: the mean of an item's attribute vectors predicts its context "
                   "(EGES-style, default); each: every value alone (Meta-Prod2Vec-style)")
    g.add_argument("--attribute-share", type=float, default=None,
                   help="share of the batches replayed through the attributes (default 0.2; "
                   "their learning rate is 5x the items', so more costs time for little)")
    g.add_argument("--attribute-validation", type=float, default=None,
                   help="share of items kept out of the attribute training to choose how cold "
                   "items are scored (default 0.1; 0 = no choice: cosine, no popularity)")
    g.add_argument("--attribute-frozen-context", action="store_true", default=None,
                   help="attribute examples do not move the context vectors (item vectors "
                   "stay exactly as without attributes)")


def catalog_options(args: argparse.Namespace, with_attributes: bool = True) -> CatalogOptions:
    specs = parse_attribute_specs(getattr(args, "catalog_attributes", None)
                                  if with_attributes else None)
    columns = tuple(c.strip() for c in args.catalog_columns.split(",")) \
        if args.catalog_columns else None
    return CatalogOptions(
        id_column=args.catalog_id_column, title_column=args.catalog_title_column or None,
        attributes=specs, format=args.catalog_format, delimiter=args.catalog_delimiter,
        encoding=args.catalog_encoding, header=not args.catalog_no_header, columns=columns,
        separator=getattr(args, "catalog_separator", "|"),
        buckets=getattr(args, "catalog_buckets", 5))


def reading_flags(args: argparse.Namespace) -> list[str]:
    """The ``--catalog-*`` flags of ``args`` that change how the file is read (not the
    attributes), for a command line printed to the user; [] when all are defaults."""
    given, default = catalog_options(args, with_attributes=False), CatalogOptions()
    flags = []
    for name in READING:
        value = getattr(given, name)
        if value == getattr(default, name):
            continue
        if name == "header":
            flags.append("--catalog-no-header")
        else:
            flag = f"--catalog-{name.replace('_', '-')}"
            flags += [flag, ",".join(value) if name == "columns" else (value or "")]
    return flags


def training_attributes(args: argparse.Namespace):
    """``(CatalogAttributes, AttributeConfig)`` for ``train(attributes=...)``, or None."""
    if not getattr(args, "catalog_attributes", None):
        return None
    if not getattr(args, "catalog", None):
        raise ConfigError("--catalog-attributes needs --catalog PATH (the catalogue file)")
    from recommender.train.attributes import AttributeConfig, CatalogAttributes

    options = catalog_options(args)
    catalog = read_catalog(args.catalog, options)
    d = AttributeConfig()
    config = AttributeConfig(
        mode=args.attribute_mode or d.mode,
        share=args.attribute_share if args.attribute_share is not None else d.share,
        validation=(args.attribute_validation if getattr(args, "attribute_validation", None)
                    is not None else d.validation),
        update_context=d.update_context if args.attribute_frozen_context is None else False)
    return (CatalogAttributes.from_catalog(catalog, options.attributes, options.separator,
                                           options.buckets), config)


def catalog_labels(args: argparse.Namespace) -> dict:
    """``item_id -> (title, category)`` for display, or {} without ``--catalog``."""
    if not getattr(args, "catalog", None):
        return {}
    from dataclasses import replace

    from recommender.core.catalog import AttributeSpec
    from recommender.core.errors import ArtifactError

    options = catalog_options(args, with_attributes=False)
    try:  # the category is shown beside titles when the catalogue has one
        return read_catalog(args.catalog, replace(
            options, attributes=(AttributeSpec("category"),))).labels()
    except ArtifactError as e:
        if "lacks column" not in str(e):
            raise
    return read_catalog(args.catalog, options).labels()
