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


def colors(names: list[str]) -> dict[str, str]:
    """One stable colour per scorer name, the same in every chart."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def _figure(width: float, height: float):
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), dpi=100)
    return fig, matplotlib.rc_context(_RC)


def _svg(fig) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    # scale with the page: drop the fixed size, keep the viewBox
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart"', text,
                  count=1)
    return text


def metrics_chart(results, ks: list[int], metrics: list[str], palette: dict[str, str]) -> str:
    """One panel per metric; a bar per scorer and cut-off (lighter bar = the larger K)."""
    n = len(results)
    fig, rc = _figure(3.6 * len(metrics), 0.45 * n * max(len(ks), 1) + 1.2)
    with rc:
        axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False,
                            gridspec_kw={"wspace": 0.12})[0]
        height = 0.8 / max(len(ks), 1)
        y = np.arange(n)[::-1]
        for ax, metric in zip(axes, metrics):
            for j, k in enumerate(ks):
                vals = [r.metrics.get((metric, k), np.nan) for r in results]
                pos = y + (len(ks) - 1) / 2 * height - j * height
                bars = ax.barh(pos, np.nan_to_num(vals), height * 0.92,
                               color=[palette[r.name] for r in results],
                               alpha=1.0 if j == 0 else 0.5)
                for bar, v in zip(bars, vals):
                    if v == v:
                        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                                f" {v:.3f}", va="center", fontsize=8, color="#334155")
            ax.set_title(f"{metric.upper()}" + (f" @{'/'.join(map(str, ks))}" if ks else ""),
                         fontsize=10, loc="left", color="#0f172a")
            ax.grid(axis="y", visible=False)
            top = np.nanmax([r.metrics.get((metric, k), 0) for r in results for k in ks] + [0])
            ax.set_xlim(0, max(top * 1.3, 0.01))
        axes[0].set_yticks(y)
        axes[0].set_yticklabels([("★ " if r.shipped else "") + r.name for r in results])
        if len(ks) > 1:
            from matplotlib.patches import Patch

            handles = [Patch(color="#64748b", alpha=1.0 if j == 0 else 0.5, label=f"@{k}")
                       for j, k in enumerate(ks)]
            fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                       ncols=len(ks), fontsize=8)
    return _svg(fig)


def bucket_chart(rows: dict[str, dict], buckets: list[str], k: int,
                 palette: dict[str, str], queries: dict[str, int]) -> str:
    """HR@k per popularity bucket of the query item, a bar per scorer."""
    names = list(rows)
    fig, rc = _figure(10.8, 2.8)
    with rc:
        ax = fig.subplots()
        width = 0.8 / max(len(names), 1)
        x = np.arange(len(buckets))
        for i, name in enumerate(names):
            vals = [rows[name].get(b, np.nan) for b in buckets]
            ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(vals), width * 0.92,
                   color=palette.get(name, PALETTE[i % len(PALETTE)]), label=name)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{b}\n{queries.get(b, 0):,} queries" if b in queries else b
                            for b in buckets])
        ax.set_ylabel(f"HR@{k}")
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper right", fontsize=8)
    return _svg(fig)


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
