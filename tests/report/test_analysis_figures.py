"""The analyses' figures on records made by hand: what is drawn, and what is said when a value cannot be drawn."""

import math

import matplotlib
import pytest

matplotlib.use("Agg")

from degradation.errors import UserError  # noqa: E402
from degradation.report.analysis_figures import (  # noqa: E402
    Drawing,
    Entry,
    entries_of_nets,
    landscape_surfaces,
    lesion_figure,
    shattering_curves,
)

AXIS = [-1.0, 0.0, 1.0]


def surface(centre: float, complete: bool = True, overflow: int = 0) -> dict:
    """A 3 x 3 bowl around `centre`, its last `overflow` points lost to float32 overflow."""
    loss = [centre + a * a + b * b for b in AXIS for a in AXIS]
    loss[len(loss) - overflow :] = [math.nan, math.inf][:overflow]
    return {
        "axis": AXIS,
        "loss": [loss[row * 3 : row * 3 + 3] for row in range(3)],
        "slice_axis": AXIS,
        "slice": [centre + a * a for a in AXIS],
        "settings": {"points": 3, "images": 10},
        "step": 100,
        "complete": complete,
    }


def texts(fig) -> list[str]:
    return [text.get_text() for ax in fig.axes for text in ax.texts]


def test_a_surface_with_overflowed_points_is_drawn_and_says_how_many():
    fig, _ = landscape_surfaces([Entry("plain", 56, 0, surface(2.0, overflow=2)), Entry("resnet", 56, 0, surface(1.0))])
    assert "2 of 9 points not finite (blank)" in texts(fig)
    assert all(ax.collections for ax in fig.axes)  # both contour plots drawn


def test_each_net_shows_its_lowest_seed_with_a_complete_grid():
    fig, _ = landscape_surfaces(
        [Entry("resnet", 20, 0, surface(1.0, complete=False)), Entry("resnet", 20, 1, surface(1.5))]
    )
    assert fig.axes[1].get_title().startswith("ResNet-20 (seed 1,")


def shattering_entry(points: int) -> Entry:
    curve = {"autocorrelation": [1.0, 0.5, 0.2], "neighbour_correlation": 0.5}
    return Entry("plain", 20, 0, {"init": {"train": curve, "eval": curve}}, {"points": points})


def test_shattering_records_of_different_numbers_of_points_are_not_drawn_together():
    """Lag k is k/(points - 1) of the line: curves of 256 and 128 points on one lag axis would compare unlike
    distances (what --redraw of records computed at two settings could otherwise do)."""
    fig = shattering_curves([shattering_entry(256), shattering_entry(256)])
    assert "1/255 of the line" in fig.axes[0].get_xlabel()
    with pytest.raises(UserError, match="records of 128 and 256 points on the line cannot share a lag axis"):
        shattering_curves([shattering_entry(256), shattering_entry(128)])


def test_nets_at_init_of_two_variants_are_not_drawn_as_one_net():
    record = {"settings": {"seed": 0}, "nets": {"resnet-8": {}, "resnet-8-preact": {}}}
    with pytest.raises(UserError, match="nets of several variants \\(the paper's, preact\\)"):
        entries_of_nets(record)
    one = entries_of_nets({"settings": {"seed": 0}, "nets": {"resnet-8-preact": {}, "resnet-14-preact": {}}})
    assert [(entry.arch, entry.depth) for entry in one] == [("resnet", 8), ("resnet", 14)]


def test_figures_of_nets_other_than_the_papers_say_which_in_their_corner():
    """imagenet-resnet-18 at init is no ResNet-18 of the paper: its figures say `imagenet nets`; the paper's say
    nothing more."""
    import matplotlib.pyplot as plt

    record = {"settings": {"seed": 0}, "nets": {"imagenet-plain-18": {}, "imagenet-resnet-18": {}}}
    entries = entries_of_nets(record)
    assert [(entry.arch, entry.depth, entry.kind) for entry in entries] == [
        ("plain", 18, "imagenet"),
        ("resnet", 18, "imagenet"),
    ]
    said = Drawing(entries).say_kind({"figure": plt.figure()})["figure"]
    assert [text.get_text() for text in said.texts] == ["imagenet nets"]
    paper = Drawing(entries_of_nets({"settings": {"seed": 0}, "nets": {"resnet-8": {}}})).say_kind({"f": plt.figure()})
    assert paper["f"].texts == []


def lesioned(intact: float, single: list[float]) -> dict:
    return {"intact": intact, "single": single, "downsampling": [False] * len(single), "random": {"1": single}}


def test_the_lesion_figure_draws_variants_of_one_net_as_lines_of_their_own():
    """The interventions study's lesion figure: ResNet-56 and its stochastic-depth variant are two nets, each its
    own line labelled by its kind, not two seeds of one averaged together."""
    entries = [
        Entry("resnet", 56, 0, lesioned(10, [20, 30])),
        Entry("resnet", 56, 0, lesioned(12, [14, 16]), kind="droppath0.5"),
    ]
    fig = lesion_figure(entries)
    drawn = {line.get_label(): list(line.get_ydata()) for line in fig.axes[0].get_lines() if line.get_label()[0] != "_"}
    assert drawn == {"ResNet-56": [20, 30], "ResNet-56 droppath0.5": [14, 16]}
