"""``pin2vec related``: print the related items of some items (or of one session) from an INDEX dir.

With ``--catalog PATH`` (CSV or Parquet with ``item_id``, ``title`` and optionally ``category``)
titles and categories are printed beside the ids, so a person can judge whether they make sense.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
import warnings

from recommender.cli.catalog import add_catalog_arguments, catalog_labels
from recommender.core.errors import ArtifactError, ConfigError
from recommender.lookup import RelatedItems


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pin2vec related", description="Related items from an INDEX dir (pin2vec index)."
    )
    p.add_argument("--index", required=True, help="INDEX dir")
    p.add_argument("items", nargs="*", metavar="ITEM", help="item id(s) to look up")
    p.add_argument("--k", type=int, help="related items per item (default: 10, or K if smaller)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--catalog", help="CSV/Parquet with item_id,title[,category] to print titles")
    p.add_argument("--session", action="store_true",
                   help="treat the ITEMs as one session (oldest first) and query through Annoy")
    p.add_argument("--attribute", action="append", metavar="NAME=VALUE",
                   help="describe a new item by its attributes instead of ITEMs (repeat: "
                   "--attribute brand=acme --attribute genres='Action|Comedy' --attribute "
                   "price=12.5); unknown names and values are ignored with a warning")
    add_catalog_arguments(p, attributes=False)
    return p


def _describe(catalog, item_id) -> dict:
    title, category = catalog.get(item_id, (None, None))
    return {"title": title, "category": category} if catalog else {}


def main(argv: list[str] | None = None) -> int:
    """Look up the related items of each ITEM.

    Unknown items are named on stderr; the exit status is 2 only when none of the ITEMs is known.
    """
    args = _parser().parse_args(argv)
    related = RelatedItems.load(args.index)
    catalog = catalog_labels(args)
    if not args.items and not args.attribute:
        raise ConfigError("give ITEM id(s) to look up, or --attribute NAME=VALUE")
    if args.k is None:
        args.k = min(10, related.k)
    if args.k < 1 or (args.k > related.k and not args.session):
        raise ConfigError(
            f"--k must be between 1 and {related.k} (the K this index was built with); "
            f"rebuild with `pin2vec index --k {args.k}` for more"
        )
    unknown = [i for i in args.items if i not in related]
    if args.items and len(unknown) == len(args.items):
        raise ArtifactError(
            f"item(s) not in the index ({len(related):,} items): {', '.join(map(repr, unknown))}; "
            f"ids look like {related.item_ids[0]!r}"
        )
    if unknown:  # print what can be printed; name the rest on stderr
        print(f"pin2vec related: not in the index ({len(related):,} items), skipped: "
              f"{', '.join(map(repr, unknown))}", file=sys.stderr)
    known = [i for i in args.items if i in related]
    if args.attribute:
        described = _attributes(args.attribute)
        text = ", ".join(f"{k}={v}" for k, v in described.items())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = related.related_to_attributes(described, args.k, default="popular")
        for w in caught:
            print(f"warning: {printable(w.message)}", file=sys.stderr)
        queries = [(f"[{text}]", found)]
    elif args.session:
        queries = [(" > ".join(args.items), related.related_to_session(args.items, args.k))]
    else:
        queries = list(zip(known, related.related_many(known, args.k)))
    if args.json:
        out = {
            "index": str(args.index),
            "scoring": related.scoring,
            "k": args.k,
            "results": [
                {
                    "item_id": q,
                    **_describe(catalog, q),
                    "related": [
                        {"item_id": r, "score": round(s, 6), **_describe(catalog, r)}
                        for r, s in rows
                    ],
                }
                for q, rows in queries
            ],
        }
        print(json.dumps(out, indent=2))
        return 0
    measure = {"similar": "cosine", "complementary": "dot"}.get(related.scoring, "score")
    # Cold rows and attribute queries are scored by the index's cold scoring: a cosine only for
    # "space" without a popularity weight (recommender/index/cold.py).
    cold = related.manifest.get("cold") or {}
    cold_measure = ("cosine" if cold.get("scoring", "space") == "space"
                    and not cold.get("popularity") else "score")
    n_cold = ((related.manifest.get("counts") or {}).get("cold_catalogue")
              or cold.get("cold_catalogue") or 0)  # embedding / count-based index
    warm_rows = len(related) - int(n_cold)
    for q, rows in queries:
        is_cold = args.attribute or (q in related and related.item_ids.index(q) >= warm_rows)
        print(f"{printable(q)}{label(catalog, q)}")
        for rank, (r, s) in enumerate(rows, 1):
            print(f"  {rank:>3}. {printable(r)}  {cold_measure if is_cold else measure}={s:.4f}"
                  f"{label(catalog, r)}")
    return 0


def printable(text) -> str:
    """``text`` safe for a terminal: control and format characters (ANSI/OSC escapes, newlines,
    bidirectional overrides, zero-width characters) shown as ``\\x1b``-style escapes, and a
    backslash as two (so an escape shown is never ambiguous with one typed in an id)."""
    text = str(text)
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and unicodedata.category(ch) not in ("Cc", "Cf", "Cs"):
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def _attributes(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--attribute takes NAME=VALUE, got {pair!r}")
        out[name.strip()] = value
    return out


def label(catalog, item_id) -> str:
    """``"  title [category]"`` for display beside an id, or ``""`` when the catalogue lacks it."""
    if not catalog or item_id not in catalog:
        return ""
    title, category = catalog[item_id]
    return f"  {printable(title)}" + (f" [{printable(category)}]" if category else "")
