"""Real Sentinel-2 and Sentinel-1 example patches to try the pipeline on, and their land cover.

The ``bigearthnet-common`` package (on PyPI; ``pip install "masksdm[notebooks]"``) ships six
Sentinel-2 L2A patches (12 bands, 120 x 120 pixels of 10 m, in Austria, Ireland, Portugal and
Finland, three UTM zones) and six Sentinel-1 patches (VV, VH) from BigEarthNet v1, with their CORINE
land-cover labels. :func:`bigearthnet_examples` unpacks them into a folder that
:func:`foundation_encoders.discovery.find_scenes` reads; nothing is downloaded.

Cite BigEarthNet when you use them: Sumbul G., Charfuelan M., Demir B., Markl V. (2019).
BigEarthNet: A Large-Scale Benchmark Archive for Remote Sensing Image Understanding. IGARSS 2019;
and Sumbul G. et al. (2021). BigEarthNet-MM. IEEE Geoscience and Remote Sensing Magazine 9(3).
The imagery is Copernicus Sentinel data (2017-2018), CDLA-Permissive-1.0 in BigEarthNet.
"""

from __future__ import annotations

import importlib.metadata
import json
import tarfile
from pathlib import Path

from foundation_encoders.imagery import ImageryError, Scene

__all__ = ["SENSOR_FOLDERS", "bigearthnet_examples", "scene_labels"]

#: Sensor -> folder name of its example patches (as the archives unpack).
SENSOR_FOLDERS = {"S2": "BigEarthNet-S2-Example", "S1": "BigEarthNet-S1-Example"}


def bigearthnet_examples(out_dir: str | Path, sensor: str = "S2") -> Path:
    """Unpack the example patches of ``sensor`` (``"S2"`` or ``"S1"``) under ``out_dir``, once.

    Returns:
        The folder of the patches (``out_dir/BigEarthNet-S2-Example``), one sub-folder per patch
        with one GeoTIFF per band and a ``*_labels_metadata.json`` sidecar.

    Raises:
        ImageryError: ``bigearthnet-common`` is not installed (the message says how to install it),
            or ``sensor`` is unknown.
    """
    if sensor not in SENSOR_FOLDERS:
        raise ImageryError(f"unknown sensor {sensor!r}: choose one of {sorted(SENSOR_FOLDERS)}")
    folder = Path(out_dir) / SENSOR_FOLDERS[sensor]
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    try:
        dist = importlib.metadata.distribution("bigearthnet-common")
    except importlib.metadata.PackageNotFoundError:
        raise ImageryError(
            "the example patches come with the bigearthnet-common package: pip install 'masksdm[notebooks]' "
            "(or pip install bigearthnet-common)"
        ) from None
    archive = Path(str(dist.locate_file(f"bigearthnet_common/{SENSOR_FOLDERS[sensor]}.tar.bz2")))
    if not archive.is_file():
        raise ImageryError(f"{archive.name} is missing from the bigearthnet-common install: reinstall it")
    with tarfile.open(archive) as tar:
        tar.extractall(Path(out_dir), filter="data")
    return folder


def scene_labels(scene: Scene) -> list[str]:
    """The CORINE land-cover labels of a BigEarthNet patch (from its sidecar), or [] without one."""
    if scene.sidecar is None:
        return []
    return [str(label) for label in json.loads(scene.sidecar.read_text()).get("labels", [])]
