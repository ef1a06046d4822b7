# SPDX-License-Identifier: GPL-2.0-only
"""bench/plot.py - the benchmark's picture: small multiples (matplotlib).

One column per message size, one row per figure (messages per second,
machine CPU per message, p99 latency); in each panel connections on a log x
axis and one line per server, solid for 1 message in flight and dashed for
more.  A server that failed or sat out a cell has no point there (the table
says why).  Writes plot.png (for the README) and plot.svg.
"""
import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt     # noqa: E402

ROWS = [("msgs", "messages/s", "log", "higher is better"),
        ("machine", "machine CPU, us/message", "log", "lower is better"),
        ("p99", "p99 latency, us", "log", "lower is better")]
STYLES = ["-", "--", ":", "-."]


def draw(outdir, table, cells, names, title):
    sizes = sorted({c[0] for c in cells})
    conns = sorted({c[1] for c in cells})
    pipes = sorted({c[2] for c in cells})
    if not sizes:
        return False
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(ROWS), len(sizes), squeeze=False,
                             figsize=(4.2 * len(sizes) + 1.5, 3.3 * len(ROWS)))
    for col, size in enumerate(sizes):
        for row, (key, label, scale, better) in enumerate(ROWS):
            ax = axes[row][col]
            for k, name in enumerate(names):
                for j, pipe in enumerate(pipes):
                    xs, ys = [], []
                    for c in conns:
                        e = table.get(((size, c, pipe), name))
                        v = e["f"].get(key) if e and e["f"] else None
                        if v:
                            xs.append(c)
                            ys.append(v)
                    if xs:
                        ax.plot(xs, ys, STYLES[j % len(STYLES)], marker="o", ms=3,
                                color=colors(k % 10), lw=1.4,
                                label="%s, %d in flight" % (name, pipe))
            ax.set_xscale("log")
            ax.set_yscale(scale)
            ax.set_xticks(conns)
            ax.set_xticklabels([str(c) for c in conns])
            ax.set_xlabel("connections")
            ax.set_ylabel(label)
            ax.set_title("%s B messages: %s (%s)" % (size, label.split(",")[0], better),
                         fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=5.5, ncol=2, loc="best", framealpha=0.7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    for ext, dpi in (("png", 110), ("svg", None)):
        fig.savefig(os.path.join(outdir, "plot." + ext), dpi=dpi)
    plt.close(fig)
    return True
