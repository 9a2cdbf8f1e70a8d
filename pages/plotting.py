"""Plotting every page uses: matplotlib without a display, a figure saved whole, and points
named in a legend, never by a label beside them (close points' labels overlap)."""

from __future__ import annotations

import itertools
from pathlib import Path

MARKERS = "osD^v<>Ph*Xp"
COLORS = [f"C{i}" for i in range(10)]


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save(plt, fig, path: Path) -> bool:
    fig.tight_layout()
    # no "Software" stamp: a PNG is a function of its figure, so a re-render compares byte for byte
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return True


def named_points(ax, points: list[tuple[str, float, float]], **style) -> None:
    """One marker a point, each its own shape and colour, its name in the legend."""
    looks = itertools.cycle((m, c) for m in MARKERS for c in COLORS)
    for (name, x, y), (marker, color) in zip(points, looks):
        ax.scatter(x, y, marker=marker, color=color, label=name, zorder=3, **style)


def legend_beside(ax, fontsize: int = 7) -> None:
    """The legend outside the plot, at its right: it hides no point."""
    ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of texts drawn inside one of the figure's axes whose boxes overlap (none, where
    points are named in a legend)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts if t.get_text()]
        found += [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
                  if box_a.overlaps(box_b)]
    return found
