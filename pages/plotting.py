"""Plotting every page uses: matplotlib without a display, and a figure saved whole."""

from __future__ import annotations

from pathlib import Path


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
