"""The real-data benchmark's readers: R tables inside a Debian package, made here from scratch."""

import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pyreadr = pytest.importorskip("pyreadr")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import real_data  # noqa: E402


def _ar_member(name: str, body: bytes) -> bytes:
    header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}`\n".encode()
    return header + body + (b"\n" if len(body) % 2 else b"")


def _fake_deb(path: Path, rda: dict[str, pd.DataFrame], package: str) -> None:
    """A Debian package (ar archive with data.tar.xz) holding R data files as labdsv/vegan do."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:xz") as tar:
        for name, frame in rda.items():
            tmp = path.parent / f"{name}.rda"
            pyreadr.write_rdata(str(tmp), frame, df_name=name)
            tar.add(tmp, arcname=f"./usr/lib/R/site-library/{package}/data/{name}.rda")
    path.write_bytes(b"!<arch>\n" + _ar_member("debian-binary", b"2.0\n") + _ar_member("data.tar.xz", tar_bytes.getvalue()))


def test_mite_tables_are_read_from_a_debian_package(tmp_path):
    rng = np.random.default_rng(0)
    n = 12
    mite = pd.DataFrame({"Brachy": rng.integers(0, 5, n), "PHTH": rng.integers(0, 2, n)}).astype(float)
    env = pd.DataFrame({
        "SubsDens": rng.uniform(20, 60, n), "WatrCont": rng.uniform(100, 800, n),
        "Substrate": pd.Categorical(rng.choice(["Sphagn1", "Interface", "Litter"], n)),
        "Shrub": pd.Categorical(rng.choice(["None", "Few", "Many"], n)),
        "Topo": pd.Categorical(rng.choice(["Hummock", "Blanket"], n)),
    })
    xy = pd.DataFrame({"x": rng.uniform(0, 2.5, n), "y": rng.uniform(0, 10, n)})
    _fake_deb(tmp_path / "r-cran-vegan_2.6-4_amd64.deb", {"mite": mite, "mite.env": env, "mite.xy": xy}, "vegan")

    data = real_data.load_mite(tmp_path)
    assert data.n_plots == n
    plots = data.plots
    np.testing.assert_allclose(plots["water_content"], env["WatrCont"])
    np.testing.assert_allclose(plots["lat"] * real_data.METRES_PER_DEGREE, xy["y"])
    assert (plots["shrubs"] == env["Shrub"].astype(str).map({"None": 0, "Few": 1, "Many": 2})).all()
    assert (plots["sphagnum"] == env["Substrate"].astype(str).str.startswith("Sphagn")).all()
    # a species is present where its count is above 0
    present = set(data.occurrences.query("species == 'Brachy'")["plot_id"])
    assert present == {f"core{i + 1}" for i in np.flatnonzero(mite["Brachy"].to_numpy() > 0)}
    with pytest.raises(FileNotFoundError, match="apt-get download"):
        real_data.load_bryce(tmp_path)


def test_tables_pair_masksdm_with_each_method_over_folds_and_species():
    rows = []
    for fold in range(2):
        for s in range(6):
            rows.append({"fold": fold, "species": f"s{s}", "setting": "all", "method": "MaskSDM", "auc": 0.8})
            rows.append({"fold": fold, "species": f"s{s}", "setting": "all", "method": "rf", "auc": 0.7 + 0.01 * s})
    per_species = pd.DataFrame(rows)
    table, tests = real_data.tables(per_species)
    assert table.loc["MaskSDM", "all"] == pytest.approx(80.0)
    assert table.loc["rf", "all"] == pytest.approx(72.5)
    (test,) = tests.itertuples()
    assert test.difference == pytest.approx(7.5) and test.better == "12/12"
    head = real_data.headline(per_species)
    assert head.loc[0, "best other"] == "rf" and head.loc[0, "MaskSDM - best"] == pytest.approx(7.5)
