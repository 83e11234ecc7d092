"""The Vega-Lite chart helpers: known answers on hand-made frames (app/components/charts.py)."""

import numpy as np
import pandas as pd
import pytest

from app.components.charts import (SCATTER_BOX, SCATTER_PICK, attribution_overlay, history_chart,
                                   saliency_histograms, saliency_scatter, scatter_sample, selected_examples)
from app.components.views import markdown_table


def frame(n: int) -> pd.DataFrame:
    """``n`` examples on a grid: image saliency i / n, text saliency 1 - i / n."""
    i = np.arange(n)
    return pd.DataFrame({"index": i, "id": [f"ex{k}" for k in i], "label": ["a", "b"] * (n // 2) + ["a"] * (n % 2),
                         "pred full": "a", "text": "what shape", "dominant": np.where(i < n / 2, "text", "image"),
                         "sal image": i / n, "sal text": 1 - i / n})


def test_the_scatter_draws_every_row_up_to_its_limit_then_a_fixed_sample_in_order():
    small = frame(10)
    assert scatter_sample(small, limit=10) is small
    big = frame(100)
    drawn = scatter_sample(big, limit=30)
    assert len(drawn) == 30 and drawn["index"].is_monotonic_increasing
    assert drawn.equals(scatter_sample(big, limit=30))  # the same rows on every redraw
    data = saliency_scatter(big, "image", "text", "dominant").layer[0].data
    assert len(data) == min(len(big), 1500) and set(data.columns) >= {"example", "x", "y", "dominant"}


def test_selected_examples_reads_clicks_then_the_box_over_every_row():
    f = frame(10)  # example i sits at (i/10, 1 - i/10)
    event = {"selection": {SCATTER_PICK: [{"example": 7}], SCATTER_BOX: {"x": [0.45, 0.05], "y": [0.5, 1.0]}}}
    # the box holds x in [0.05, 0.45] and y in [0.5, 1]: examples 1..4 (y = 0.9 .. 0.6)
    assert selected_examples(event, f, "image", "text") == [7, 1, 2, 3, 4]
    both = {"selection": {SCATTER_PICK: [{"example": 2}], SCATTER_BOX: {"x": [0.0, 0.25], "y": [0.0, 1.0]}}}
    assert selected_examples(both, f, "image", "text") == [2, 0, 1]  # a clicked point inside the box once

    class Event:  # what st.altair_chart returns: attribute access
        selection = {SCATTER_BOX: {"x": [0.85, 1.0], "y": [0.0, 0.2]}}

    assert selected_examples(Event(), f, "image", "text") == [9]
    assert selected_examples(None, f, "image", "text") == []
    assert selected_examples({"selection": {SCATTER_BOX: {}}}, f, "image", "text") == []


def test_the_histograms_count_every_example_once_per_modality_on_shared_bins():
    f = frame(40)
    data = saliency_histograms(f, ["image", "text"], bins=8).data
    for m in ("image", "text"):
        part = data[data["modality"] == m]
        assert part["examples"].sum() == 40 and len(part) == 8
    image, text = (data[data["modality"] == m][["from", "to"]].to_numpy() for m in ("image", "text"))
    assert np.array_equal(image, text)


def test_the_history_has_one_point_per_epoch_and_view_with_the_saved_value():
    history = [{"epoch": 0, "val": {"full": {"accuracy": 0.5}, "only:image": {"accuracy": 0.25}}},
               {"epoch": 1, "train_loss": 0.3},  # an epoch without validation draws no point
               {"epoch": 2, "val": {"full": {"accuracy": 0.75}, "only:image": {"accuracy": 0.5}}}]
    data = history_chart(history).data
    assert data.to_dict("records") == [{"epoch": 1, "view": "full input", "value": 0.5},
                                       {"epoch": 1, "view": "image only", "value": 0.25},
                                       {"epoch": 3, "view": "full input", "value": 0.75},
                                       {"epoch": 3, "view": "image only", "value": 0.5}]


def test_the_attribution_overlay_blends_red_for_blue_against_by_magnitude():
    image = np.full((2, 2, 3), 200, dtype=np.uint8)
    same, lim = attribution_overlay(image, np.zeros((2, 2)))
    assert lim == 1.0 and np.array_equal(same, image)  # no attribution: the picture as it is
    attr = np.array([[2.0, -2.0], [1.0, 0.0]])
    out, lim = attribution_overlay(image, attr, opacity=0.5)
    assert lim == 2.0
    base = 200 / 255
    red, blue = np.array([0.70, 0.09, 0.17]), np.array([0.13, 0.40, 0.67])
    expected = {(0, 0): 0.5 * base + 0.5 * red, (0, 1): 0.5 * base + 0.5 * blue,
                (1, 0): 0.75 * base + 0.25 * red, (1, 1): np.full(3, base)}
    for (r, c), want in expected.items():
        assert np.allclose(out[r, c], want * 255, atol=0.51), (r, c)  # to the nearest of 256 levels


def test_the_attribution_overlay_saturates_at_the_98th_percentile_as_captum_does():
    attr = np.zeros((10, 10))
    attr[0, 0], attr[1:3] = 100.0, 1.0  # one outlier; 20 pixels at 1; the 98th percentile is 1
    out, lim = attribution_overlay(np.zeros((10, 10, 3), dtype=np.uint8), attr, opacity=1.0)
    assert lim == 1.0 and np.array_equal(out[0, 0], out[1, 0])  # the outlier is no redder than a 1


def test_the_attribution_overlay_resizes_a_coarser_map_and_takes_grey_images():
    out, _ = attribution_overlay(np.zeros((8, 8), dtype=np.uint8), np.ones((2, 2)))
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8 and (out[..., 0] > 0).all()


@pytest.mark.parametrize("text, shown", [("a|b", r"a\|b"), ("no_smoking*", r"no\_smoking\*"),
                                         ("two\nlines", "two lines")])
def test_a_markdown_table_shows_cells_as_written(text, shown):
    table = markdown_table([{"view": "full input", "prediction": text}])
    assert table.splitlines() == ["| view | prediction |", "|---|---|", f"| full input | {shown} |"]
