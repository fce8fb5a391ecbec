"""``pin2vec report``: one self-contained HTML page about a ``pin2vec run`` output directory.

:func:`write_report` reads what the run dir holds (:mod:`~recommender.report.data`), computes what
the evaluation JSON lacks (:mod:`~recommender.report.scoring`), draws the charts
(:mod:`~recommender.report.charts`) and assembles the page (:mod:`~recommender.report.page`).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_report"]


def write_report(run_dir: str | Path, output: str | Path | None = None,
                 catalog: str | Path | None = None, catalog_options: dict | None = None) -> Path:
    """Write the report of ``run_dir`` to ``output`` (default ``run_dir/report.html``).

    ``catalog`` replaces the run's catalogue, read with ``catalog_options``
    (:meth:`~recommender.core.catalog.CatalogOptions.to_dict`; None: CSV with a header or
    Parquet). Returns the path written. Missing parts of the run dir become notes on the page.
    """
    from recommender.core.artifacts import write_text
    from recommender.core.errors import ConfigError
    from recommender.report.data import load_run
    from recommender.report.page import render

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a directory: pass the --output dir of `pin2vec run`")
    data = load_run(run_dir, catalog, catalog_options)
    path = Path(output) if output else run_dir / "report.html"
    write_text(path, render(data))
    return path
