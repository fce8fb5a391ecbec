"""Charts for the report, drawn with matplotlib and returned as inline SVG (or a PNG data URI).

Only ``matplotlib.figure.Figure`` is used (no pyplot): no global state, no display backend, safe in
a headless process. Text stays text in the SVG (``svg.fonttype = none``): smaller files, crisp at
any zoom, and the browser's own font. The 2-D map is a PNG because thousands of points as SVG
elements would make the page heavy.
"""

from __future__ import annotations

import base64
import io
import re
import textwrap

import numpy as np

PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899",
           "#84cc16", "#64748b", "#a16207")
_RC = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#cbd5e1",
    "axes.labelcolor": "#334155",
    "xtick.color": "#475569",
    "ytick.color": "#475569",
    "axes.grid": True,
    "grid.color": "#e2e8f0",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "legend.frameon": False,
}


def _figure(width: float, height: float):
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), dpi=100)
    return fig, matplotlib.rc_context(_RC)


def _svg(fig, tight: bool = True) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight" if tight else None)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    # scale with the page: drop the fixed size, keep the viewBox
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart"', text,
                  count=1)
    return text


HIGHLIGHT = "#2563eb"  # bars of the shipped scorer
NEUTRAL = "#94a3b8"    # bars of every other scorer
LABEL_CHARS = 40       # a scorer name is wrapped to lines of this many characters
LABEL_INCH = 3.1       # width kept on the left for the wrapped names


def wrap_label(name: str, width: int = LABEL_CHARS, lines: int = 3) -> str:
    """``name`` wrapped to ``width`` characters a line, at most ``lines`` lines (then ``…``)."""
    parts = textwrap.wrap(name, width, break_on_hyphens=False) or [""]
    if len(parts) > lines:
        parts = parts[:lines]
        parts[-1] = parts[-1][: width - 1].rstrip() + "…"
    return "\n".join(parts)


def bar_panels(names: list[str], shipped: set[str], panels: list[tuple[str, list[list[float]]]],
               series: list[str], width: float = 10.8, same_scale: bool = False) -> str:
    """Small multiples of horizontal bars: one panel per metric (or bucket), one row per scorer.

    ``panels`` is ``[(title, [values per scorer, for each series])]``: the first series is drawn
    solid, the next ones lighter just below it (e.g. @10 then @20). The full scorer names are
    written once, wrapped, left of the first panel; the shipped scorer's row is shaded, its name
    bold and its bars in the accent colour, every other scorer grey (no 11-colour legend to decode).
    The figure's height grows with the number of scorers so the page can show it at its natural
    size. ``same_scale`` gives every panel the same x axis (values comparable across panels).
    """
    from matplotlib.patches import Patch

    n, s = len(names), max(len(series), 1)
    labels = [wrap_label(name) for name in names]
    lines = max((label.count("\n") + 1 for label in labels), default=1)
    row = max(0.15 * lines + 0.08, 0.12 * s + 0.1, 0.3)  # inches per scorer
    legend = s > 1 or bool(shipped & set(names))
    bottom = 0.3 + 0.3 * legend  # inches under the panels: x ticks, then the legend
    height = row * n + 0.3 + bottom
    fig, rc = _figure(width, height)
    with rc:
        # fixed margins, no tight crop: every such chart has the same scale on the page
        fig.subplots_adjust(left=LABEL_INCH / width, right=0.985, top=1 - 0.3 / height,
                            bottom=bottom / height, wspace=0.1)
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        y = np.arange(n)[::-1].astype(float)
        bar = 0.8 / s
        colour = [HIGHLIGHT if name in shipped else NEUTRAL for name in names]
        overall = float(np.nanmax([v for _, values in panels for vals in values for v in vals]
                                  + [0.0]))
        for ax, (title, values) in zip(axes, panels):
            top = overall if same_scale else float(
                np.nanmax([v for vals in values for v in vals] + [0.0]))
            span = max(top * 1.3, 0.01)
            for i, name in enumerate(names):
                if name in shipped:
                    ax.axhspan(y[i] - 0.5, y[i] + 0.5, color="#dbeafe", lw=0, zorder=0)
            for j, vals in enumerate(values):
                pos = y + (s - 1) / 2 * bar - j * bar
                bars = ax.barh(pos, np.nan_to_num(vals), bar * 0.88, color=colour,
                               alpha=1.0 if j == 0 else 0.45, zorder=2)
                for b, v, name in zip(bars, vals, names):
                    text = f"{v:.3f}" if v == v else "–"
                    mine = name in shipped
                    ax.text(b.get_width() + span * 0.012, b.get_y() + b.get_height() / 2, text,
                            va="center", fontsize=7.5, zorder=3,
                            color="#1e3a8a" if mine else "#475569",
                            fontweight="bold" if mine and j == 0 else "normal")
            ax.set_title(title, fontsize=10, loc="left", color="#0f172a")
            ax.set_xlim(0, span)
            ax.set_ylim(-0.5, n - 0.5)
            ax.grid(axis="y", visible=False)
            ax.tick_params(axis="x", labelsize=8)
            ax.tick_params(axis="y", length=0)
            ax.xaxis.get_major_locator().set_params(nbins=4)
        axes[0].set_yticks(y)
        axes[0].set_yticklabels(labels, fontsize=8.5, linespacing=1.1)
        for tick, name in zip(axes[0].get_yticklabels(), names):
            if name in shipped:
                tick.set_fontweight("bold")
                tick.set_color("#1e3a8a")
        handles = []
        if s > 1:
            handles = [Patch(color=NEUTRAL, alpha=1.0 if j == 0 else 0.45, label=label)
                       for j, label in enumerate(series)]
        if shipped & set(names):
            handles.append(Patch(color=HIGHLIGHT, label="shipped"))
        if handles:  # below the panels, outside every plot area
            fig.legend(handles=handles, loc="lower left", ncols=len(handles), fontsize=8,
                       bbox_to_anchor=(LABEL_INCH / width, 0.0))
    return _svg(fig, tight=False)


def metrics_chart(results, ks: list[int], metrics: list[str]) -> str:
    """One panel per metric, a row per scorer: a solid bar at the first K, a lighter one per
    larger K."""
    names = [r.name for r in results]
    shipped = {r.name for r in results if r.shipped}
    panels = [(metric.upper() + (f" @{'/'.join(map(str, ks))}" if len(ks) > 1 else
                                 f"@{ks[0]}" if ks else ""),
               [[r.metrics.get((metric, k), np.nan) for r in results] for k in ks])
              for metric in metrics]
    return bar_panels(names, shipped, panels, [f"@{k}" for k in ks])


def bucket_chart(rows: dict[str, dict], buckets: list[str], k: int, shipped: set[str],
                 queries: dict[str, int], shares: dict[str, float] | None = None) -> str:
    """HR@k per popularity bucket of the query item: one panel per bucket, a row per scorer."""
    names = list(rows)
    shares = shares or {}

    def title(b: str) -> str:
        if b in queries:
            return f"{b} · {queries[b]:,} queries"
        if b in shares:
            return f"{b} · {shares[b]:.0%} of queries"
        return b

    panels = [(title(b), [[rows[name].get(b, np.nan) for name in names]]) for b in buckets]
    return bar_panels(names, shipped, panels, [f"HR@{k}"], same_scale=True)


def training_chart(epochs: list[dict]) -> str:
    """Loss per epoch (line) beside words per second per epoch (bars)."""
    from matplotlib.ticker import FuncFormatter

    fig, rc = _figure(10.8, 3.0)
    with rc:
        left, right = fig.subplots(1, 2, gridspec_kw={"wspace": 0.18})
        e = [r.get("epoch", i + 1) for i, r in enumerate(epochs)]
        loss = [r.get("loss", np.nan) for r in epochs]
        left.plot(e, loss, marker="o", markersize=3, color=PALETTE[0])
        left.set_title("training loss per epoch", fontsize=10, loc="left")
        left.ticklabel_format(axis="y", useOffset=False)
        left.set_xlabel("epoch")
        left.xaxis.get_major_locator().set_params(integer=True)
        wps = [r.get("words_per_second", np.nan) for r in epochs]
        right.bar(e, np.nan_to_num(wps), color=PALETTE[2])
        right.set_title("words / s per epoch", fontsize=10, loc="left")
        right.set_xlabel("epoch")
        right.xaxis.get_major_locator().set_params(integer=True)
        right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:.0f}k"))
        right.grid(axis="x", visible=False)
    return _svg(fig)


def map_png(xy: np.ndarray, labels: list[str] | None, sizes: np.ndarray) -> str:
    """Scatter of 2-D item coordinates as a PNG data URI, coloured by ``labels`` when given."""
    fig, rc = _figure(8.0, 5.6)
    with rc:
        ax = fig.subplots()
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        if labels is None:
            ax.scatter(xy[:, 0], xy[:, 1], s=sizes, c=PALETTE[0], alpha=0.55, linewidths=0)
        else:
            groups = {}
            for i, lab in enumerate(labels):
                groups.setdefault(lab, []).append(i)
            order = sorted(groups, key=lambda g: (g == "other", -len(groups[g])))
            for i, lab in enumerate(order):
                idx = np.array(groups[lab])
                color = "#cbd5e1" if lab == "other" else PALETTE[i % len(PALETTE)]
                ax.scatter(xy[idx, 0], xy[idx, 1], s=sizes[idx], c=color, alpha=0.6,
                           linewidths=0, label=f"{lab} ({len(idx):,})")
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
                      markerscale=2.0)
        # a few far outliers would squeeze the rest into a dot: frame the central 99% per axis
        lo, hi = np.percentile(xy, 0.5, axis=0), np.percentile(xy, 99.5, axis=0)
        pad = (hi - lo) * 0.04 + 1e-9
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
