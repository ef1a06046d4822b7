# SPDX-License-Identifier: GPL-2.0-only
"""bench/plot.py - the benchmark's picture: small multiples (matplotlib).

One column per message size, one row per figure (messages per second,
machine CPU per message, p99 latency) and messages in flight; in each panel
connections on a log x axis and one line per server, with its legend.  A server that failed or sat out a cell has no point there (the table
says why).  Writes plot.png (for the README) and plot.svg.
"""
import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt     # noqa: E402
from matplotlib import ticker       # noqa: E402

ROWS = [("msgs", "messages/s", "log", "higher is better"),
        ("machine", "machine CPU, us/message", "log", "lower is better"),
        ("p99", "p99 latency, us", "log", "lower is better")]
MARKERS = ["o", "s", "^", "v", "D", "P", "X", "*", "h", "<"]


def panel(ax, table, size, pipe, conns, names, key, label, better):
    colors = plt.get_cmap("tab10")
    for k, name in enumerate(names):
        xs, ys = [], []
        for c in conns:
            e = table.get(((size, c, pipe), name))
            v = e["f"].get(key) if e and e["f"] else None
            if v:
                xs.append(c)
                ys.append(v)
        if xs:
            ax.plot(xs, ys, MARKERS[k % len(MARKERS)], ls="-", ms=4, lw=1.4,
                    color=colors(k % 10), label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(conns)
    ax.set_xticklabels([str(c) for c in conns])
    ax.set_xlim(min(conns) / 1.5, max(conns) * 1.5)
    ax.set_xlabel("connections")
    ax.set_ylabel(label)
    # Narrow log ranges would show one labelled tick or none: label 2x, 5x.
    ax.yaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))
    ax.yaxis.set_minor_formatter(ticker.LogFormatterSciNotation(
        labelOnlyBase=False, minor_thresholds=(3, 3)))
    ax.tick_params(axis="y", which="minor", labelsize=6)
    ax.set_title("%d B, %d in flight: %s (%s)" % (size, pipe, label.split(",")[0], better),
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, loc="best", framealpha=0.6)


def draw(outdir, table, cells, names, title):
    sizes = sorted({c[0] for c in cells})
    conns = sorted({c[1] for c in cells})
    pipes = sorted({c[2] for c in cells})
    if not sizes:
        return False
    rows = [(r, p) for r in ROWS for p in pipes]
    fig, axes = plt.subplots(len(rows), len(sizes), squeeze=False,
                             figsize=(4.3 * len(sizes) + 0.8, 2.9 * len(rows)))
    for col, size in enumerate(sizes):
        for row, ((key, label, _, better), pipe) in enumerate(rows):
            panel(axes[row][col], table, size, pipe, conns, names, key, label, better)
    fig.suptitle(title + "\nno point: the server failed or sat out the cell "
                 "(the table says why)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.975))
    for ext, dpi in (("png", 90), ("svg", None)):
        fig.savefig(os.path.join(outdir, "plot." + ext), dpi=dpi)
    plt.close(fig)
    return True
