"""The figures notebooks show: what each draws comes from the data given, and they read the
rasters the map commands write."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import rasterio  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402

from masksdm import plots  # noqa: E402
from masksdm.explain.core import ShapleyResult  # noqa: E402
from masksdm.explain.games import compare_estimators, global_shapley, local_shapley  # noqa: E402
from masksdm.explain.report import (  # noqa: E402
    global_figure,
    local_figure,
    mean_over_species,
    save_figure,
    site_figure,
)
from masksdm.model.checkpoint import load_checkpoint  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _raster(path, values, *, scale=1.0, nodata=None, dtype="float32"):
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
                       dtype=dtype, crs="EPSG:4326", transform=from_origin(0, 10, 1, 1), nodata=nodata) as dst:
        dst.write(values.astype(dtype), 1)
        dst.scales = (scale,)
    return path


def test_read_map_applies_scale_and_nodata(tmp_path):
    codes = np.array([[0, 127], [254, 255]])
    path = _raster(tmp_path / "p.tif", codes, scale=1 / 254, nodata=255, dtype="uint8")
    values, extent = plots.read_map(path)
    np.testing.assert_allclose(values[:1], [[0, 0.5]], atol=1e-3)
    assert values[1, 0] == pytest.approx(1.0) and np.isnan(values[1, 1])
    assert extent == (0, 2, 8, 10)


def test_maps_share_one_colour_scale(tmp_path):
    a = _raster(tmp_path / "a.tif", np.full((4, 5), 0.2))
    b = _raster(tmp_path / "b.tif", np.full((4, 5), 0.9))
    fig = plots.maps_figure([a, b], ["climate only", "all"], label="probability")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    for im in images:
        np.testing.assert_allclose(im.get_clim(), (0.2, 0.9), rtol=1e-6)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["climate only", "all"]
    binary = plots.maps_figure([a], cmap="range")
    assert binary.legends and [t.get_text() for t in binary.legends[0].get_texts()] == ["absent", "present"]


def test_locations_training_and_subsets_figures(tmp_path, tiny_workspace, tiny_run):
    fig = plots.locations_figure(tiny_workspace.plots)
    counts = tiny_workspace.plots["split"].value_counts()
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [f"{s} ({counts[s]})" for s in ("train", "val", "test")]

    history = pd.read_csv(tiny_run / "metrics.csv")
    best = history.loc[history["val_mean_auc"].idxmax()]
    fig = plots.training_figure(tiny_run)
    assert f"epoch {int(best['epoch'])}" in fig.axes[1].get_title()
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), history["train_loss"])

    table = pd.DataFrame({"climate": [0.7, 0.65, 0.72], "all": [0.8, 0.79, 0.8]},
                         index=["MaskSDM", "mean imputation", "oracle"])
    fig = plots.subsets_figure(table, reference="oracle")
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches)
    assert heights == [65.0, 70.0, 79.0, 80.0]  # bars for two methods; the oracle is drawn as ticks


def test_mean_over_species_is_the_global_value_with_its_standard_error(tiny_workspace, tiny_run):
    model, card = load_checkpoint(tiny_run)
    x, y = tiny_workspace.features("val"), tiny_workspace.labels("val")
    whole, _ = global_shapley(model, card, x, y)
    per, names = global_shapley(model, card, x, y, per_species=True)
    mean = mean_over_species(per, names)
    np.testing.assert_allclose(mean.values, whole.values, atol=1e-9)
    assert float(mean.full_value) == pytest.approx(float(whole.full_value))
    np.testing.assert_allclose(mean.std_errors, per.values.std(axis=0, ddof=1) / np.sqrt(len(names)))
    fig = global_figure(mean, unit="AUC x 100")
    bars = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    assert bars[0].errorbar is not None and "error bars 2 SE" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="per-species"):
        mean_over_species(whole)


def test_top_keeps_the_largest_players():
    result = ShapleyResult(players=list("abcde"), values=np.array([0.1, -3.0, 2.0, 0.5, -0.2]),
                           base_value=np.asarray(50.0), full_value=np.asarray(49.4), std_errors=None,
                           method="exact", n_evaluations=32)
    fig = global_figure(result, top=3)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b", "d", "c"]


def test_site_waterfall_goes_from_base_to_prediction(tiny_workspace, tiny_run, tmp_path):
    model, card = load_checkpoint(tiny_run)
    result = local_shapley(model, card, tiny_workspace.features("test")[:5], card.species[0])
    fig = site_figure(result, site=2)
    bars = fig.axes[0].patches
    ends = [b.get_x() + b.get_width() for b in bars]
    assert bars[0].get_x() == pytest.approx(float(result.base_value[2, 0]))
    assert ends[-1] == pytest.approx(float(result.full_value[2, 0]), abs=1e-9)
    assert save_figure(fig, tmp_path / "site.png").stat().st_size > 1000


def test_local_panels_put_each_player_on_one_row(tiny_workspace, tiny_run):
    model, card = load_checkpoint(tiny_run)
    result = local_shapley(model, card, tiny_workspace.features("test")[:30], card.species[0])
    fig = local_figure(result, species=card.species[0])
    left, right = fig.axes
    strength = np.abs(result.values[:, 0, :]).mean(axis=0)
    labels = [t.get_text() for t in left.get_yticklabels()]
    for bar in right.patches:  # the bar on a player's row has that player's mean |value|
        player = labels[int(round(bar.get_y() + bar.get_height() / 2))]
        assert bar.get_width() == pytest.approx(strength[result.players.index(player)])
    np.testing.assert_array_equal(left.get_yticks(), np.arange(len(labels)))  # the boxes' rows


def test_sampled_estimators_approach_exact_values(tiny_workspace, tiny_run):
    model, card = load_checkpoint(tiny_run)
    players = [p.name for p in card.predictors][:6]
    runs = compare_estimators(model, card, tiny_workspace.features("test")[:20], card.species[0],
                              players=players, budgets=[24, 512], repeats=3)
    exact = runs[runs["method"] == "exact"]
    assert len(exact) == 1 and int(exact["n_evaluations"].iloc[0]) == 64 and float(exact["rmse"].iloc[0]) == 0
    sampled = runs[runs["method"] != "exact"]
    assert (sampled["n_evaluations"] <= sampled["budget"]).all()
    error = sampled.groupby(["method", "budget"])["rmse"].mean()
    for method in ("permutation", "kernel"):
        assert error[(method, 512)] < error[(method, 24)]
    fig = plots.estimator_figure(runs)
    assert fig.axes[0].get_yscale() == "log"


def test_embedding_figure_projects_the_available_vectors():
    rng = np.random.default_rng(0)
    vectors = np.vstack([rng.normal(0, 1, (10, 8)), rng.normal(5, 1, (10, 8)), np.full((2, 8), np.nan)])
    fig = plots.embedding_figure(vectors, ["a"] * 10 + ["_4_55"] * 12)
    collections = fig.axes[0].collections
    assert [len(c.get_offsets()) for c in collections] == [10, 10]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "4_55"]
