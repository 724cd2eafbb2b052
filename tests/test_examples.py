"""The packaged example patches, places inside them, and the encoder the notebooks fall back on."""

from __future__ import annotations

import shutil

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import foundation_encoders  # noqa: E402
from foundation_encoders.discovery import find_scenes  # noqa: E402
from foundation_encoders.examples import bigearthnet_examples, scene_labels  # noqa: E402
from foundation_encoders.imagery import ImageryError, locate, sample_locations  # noqa: E402
from foundation_encoders.smarties import WeightsNotFoundError  # noqa: E402
from masksdm import plots  # noqa: E402
from masksdm.satellite import embed_locations  # noqa: E402


def test_examples_unpack_once_into_scenes_with_land_cover(ben_dir):
    folder = bigearthnet_examples(ben_dir, "S2")  # already there: nothing unpacked again
    assert folder == ben_dir / "BigEarthNet-S2-Example"
    scenes = find_scenes(folder)
    assert len(scenes) == 6 and {s.crs.to_epsg() for s in scenes} == {32629, 32633, 32635}
    assert all(scene_labels(s) for s in scenes)
    assert "Non-irrigated arable land" in scene_labels(next(s for s in scenes if s.name.endswith("_87_48")))
    assert all(s.sidecar is not None and s.sidecar.name == f"{s.name}_labels_metadata.json" for s in scenes)
    s1 = find_scenes(bigearthnet_examples(ben_dir, "S1"))
    assert {s.sensor for s in s1} == {"S1"}
    with pytest.raises(ImageryError, match="unknown sensor"):
        bigearthnet_examples(ben_dir, "L8")


def test_a_lone_sidecar_of_another_name_is_the_scenes(ben_dir, tmp_path):
    source = next((ben_dir / "BigEarthNet-S2-Example").iterdir())
    folder = tmp_path / "patch"
    shutil.copytree(source, folder)
    (folder / f"{source.name}_labels_metadata.json").rename(folder / "renamed_labels_metadata.json")
    (scene,) = find_scenes(folder)
    assert scene.sidecar == folder / "renamed_labels_metadata.json" and scene_labels(scene)
    (folder / "renamed_labels_metadata.json").unlink()
    (bare,) = find_scenes(folder)
    assert bare.sidecar is None and scene_labels(bare) == []


def test_sampled_places_have_their_whole_window_in_their_image(ben_dir):
    scenes = find_scenes(ben_dir / "BigEarthNet-S2-Example")
    lon, lat, image = sample_locations(scenes, 7, size_px=40, seed=3)
    assert lon.shape == lat.shape == image.shape == (42,)
    index, x, y = locate(lon, lat, scenes, size_px=40)
    np.testing.assert_array_equal(index, image)
    for i, scene in enumerate(scenes):
        left, bottom, right, top = scene.bounds
        inside = index == i
        assert (x[inside] - 200 >= left - 1e-6).all() and (x[inside] + 200 <= right + 1e-6).all()
        assert (y[inside] - 200 >= bottom - 1e-6).all() and (y[inside] + 200 <= top + 1e-6).all()
    with pytest.raises(ImageryError, match="smaller than a 200-pixel window"):
        sample_locations(scenes, 1, size_px=200)
    fig = plots.scenes_figure(scenes, places=(lon, lat), window=40)
    assert sum(len(ax.collections[0].get_offsets()) for ax in fig.axes if ax.collections) == 42
    plt.close(fig)


def test_without_a_weights_file_the_encoder_is_tiny_random_and_says_so(monkeypatch, ben_dir):
    monkeypatch.delenv(foundation_encoders.WEIGHTS_ENV, raising=False)
    state = torch.random.get_rng_state()
    encoder, note = foundation_encoders.smarties_or_tiny(seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is untouched
    assert encoder.name == "smarties-tiny" and "RANDOM weights" in note
    again, _ = foundation_encoders.smarties_or_tiny(seed=1)
    assert all(torch.equal(a, b) for a, b in zip(encoder.state_dict().values(), again.state_dict().values(), strict=True))
    scenes = find_scenes(ben_dir / "BigEarthNet-S2-Example")
    lon, lat, _ = sample_locations(scenes, 2, size_px=32)
    result = embed_locations(encoder, scenes, lon, lat, window=32, device="cpu", progress=False)
    assert result.available.all() and result.vectors.shape == (12, encoder.embed_dim)
    monkeypatch.setenv(foundation_encoders.WEIGHTS_ENV, str(ben_dir / "absent.safetensors"))
    with pytest.raises(WeightsNotFoundError):
        foundation_encoders.smarties_or_tiny()
