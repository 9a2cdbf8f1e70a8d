"""Every plot the committed records render names its points in a legend: no two texts inside a
plot overlap (the real-shape plot once had a dozen labels on top of each other)."""

from __future__ import annotations

import pytest

import pages.plots
import pages.plotting
from compat.matrix import load as load_matrix
from pages.render import render
from tests.conftest import REPO


@pytest.fixture
def figures(monkeypatch) -> list:
    """What each figure a render saves shows, read before it is saved and closed: its file, the
    texts inside its plots that overlap, and per plot its points and legend entries."""
    kept = []
    real_save = pages.plotting.save

    def keep(plt, fig, path):
        fig.tight_layout()
        plots = [(sum(len(c.get_offsets()) for c in ax.collections),
                  [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else [])
                 for ax in fig.axes]
        kept.append((path.name, pages.plotting.overlapping_texts(fig), plots))
        return real_save(plt, fig, path)

    monkeypatch.setattr(pages.plotting, "save", keep)
    monkeypatch.setattr(pages.plots, "save", keep)  # it holds the name since its import
    return kept


def test_no_two_texts_overlap_on_any_committed_plot(tmp_path, figures) -> None:
    render([REPO / "reports" / "records"], tmp_path, matrix=load_matrix())
    drawn = {name: (overlaps, plots) for name, overlaps, plots in figures}
    assert {"real-shape.png", "quantization.png", "throughput.png"} <= set(drawn), set(drawn)
    for name, (overlaps, _) in drawn.items():
        assert overlaps == [], name
    for plot in ("real-shape.png", "quantization.png"):
        points, labels = drawn[plot][1][0]
        assert points > 5 and len(labels) >= points, (plot, points, labels)  # every point named


def test_the_finder_sees_two_labels_on_top_of_each_other() -> None:
    plt = pages.plotting.pyplot()
    fig, ax = plt.subplots()
    ax.scatter([1, 1.001], [1, 1.001])
    ax.set_xlim(0, 2)
    ax.set_ylim(0, 2)
    ax.annotate("llama_cpp Q8_0", (1, 1))
    ax.annotate("llama_cpp Q4_K_M", (1.001, 1.001))
    assert pages.plotting.overlapping_texts(fig) == [("llama_cpp Q8_0", "llama_cpp Q4_K_M")]
    plt.close(fig)
