"""The command line, called in-process as a user would type it."""

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from masksdm.cli import main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    import re

    listed = re.findall(r"^    (\w+) ", out, re.M)  # the commands, each with its help, in order
    assert listed == ["demo", "fetch", "simulate", "prepare", "train", "evaluate", "compare", "cv", "shapley", "embed",
                      "predict", "change", "app", "info"]


def test_every_command_group_parses_its_options():
    """The split CLI assembles every command with its own options and handler."""
    from masksdm.cli import build_parser

    parser = build_parser()
    cases = {
        ("train", "--workspace", "ws", "--epochs", "3"): ("cmd_train", "epochs", 3),
        ("evaluate", "--workspace", "ws", "--subsets", "all"): ("cmd_evaluate", "subsets", ["all"]),
        ("shapley", "local", "--workspace", "ws", "--species", "a"): ("cmd_shapley_local", "species", ["a"]),
        ("embed", "cells", "--workspace", "ws", "--imagery", "s2"): ("cmd_embed", "kind", "cells"),
        ("predict", "--rasters", "r", "--out", "o", "--mask", "Human"): ("cmd_predict", "mask", "Human"),
        ("prepare", "--workspace", "ws", "--table", "t.csv"): ("cmd_prepare", "layout", "long"),
        ("app", "--port", "9000"): ("cmd_app", "port", 9000),
        ("demo", "--plots", "100"): ("cmd_demo", "plots", 100),
        ("info", "--list-species"): ("cmd_info", "list_species", True),
    }
    for argv, (handler, key, value) in cases.items():
        args = parser.parse_args(list(argv))
        assert args.func.__name__ == handler, argv
        assert getattr(args, key) == value, argv


def test_python_dash_m_runs():
    result = subprocess.run([sys.executable, "-m", "masksdm", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "masksdm" in result.stdout


def test_train_evaluate_info(tiny_workspace, tmp_path, capsys):
    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace.path, ws, ignore=shutil.ignore_patterns("models", "reports"))
    config = tmp_path / "run.toml"
    config.write_text('preset = "cpu"\n[model]\nd_token = 16\nn_blocks = 1\nn_heads = 2\n[train]\nepochs = 2\nbatch_size = 64\n')
    assert main(["train", "--workspace", str(ws), "--config", str(config), "--quiet"]) == 0
    assert "validation mean AUC" in capsys.readouterr().out
    assert main(["evaluate", "--workspace", str(ws), "--subsets", "WorldClim", "WorldClim+SoilGrids", "all", "--quiet"]) == 0
    report = pd.read_csv(ws / "reports" / "evaluation_main_test.csv")
    assert list(report["subset"]) == ["WorldClim", "WorldClim+SoilGrids", "all"]
    assert list(report["n_predictors"]) == [1, 2, 6]
    assert ((report["auc_low"] < report["mean_auc"]) & (report["mean_auc"] < report["auc_high"])).all()
    assert report["brier"].between(0, 1).all()
    curves = pd.read_parquet(ws / "reports" / "evaluation_main_test_reliability.parquet")
    assert set(curves["subset"]) == set(report["subset"]) and "(all species)" in set(curves["species"])
    per = pd.read_parquet(ws / "reports" / "evaluation_main_test_per_species.parquet").query("subset == 'all'")
    in_bins = curves.query("subset == 'all' and species != '(all species)'").groupby("species")["n"].sum()
    assert len(in_bins) == per["auc"].notna().sum() > 0
    assert (in_bins == (per["n_presences"] + per["n_absences"]).iloc[0]).all()  # every test plot in one bin
    assert (ws / "reports" / "evaluation_main_test_reliability.png").stat().st_size > 10_000
    assert main(["evaluate", "--workspace", str(ws), "--quiet"]) == 2  # an existing report is kept
    assert "--force" in capsys.readouterr().err
    assert main(["evaluate", "--workspace", str(ws), "--force", "--quiet"]) == 0
    assert len(pd.read_csv(ws / "reports" / "evaluation_main_test.csv")) == 6  # now every group + all
    assert main(["info", "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "models: main" in out and "WorldClim (1): bio_1" in out
    assert main(["info", "--checkpoint", str(ws / "models" / "main")]) == 0
    out = capsys.readouterr().out
    assert "6 predictors" in out and "validation mean AUC" in out and "complete: True" in out
    assert main(["info"]) == 2
    # a second train without --force or --resume is refused with the fix named
    assert main(["train", "--workspace", str(ws), "--config", str(config), "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_errors_are_one_clear_line(tmp_path, capsys):
    code = main(["prepare", "--workspace", str(tmp_path / "ws"), "--splotopen", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "sPlotOpen_header" in err and "Traceback" not in err
    assert main(["evaluate", "--workspace", str(tmp_path)]) == 2
    assert "masksdm prepare" in capsys.readouterr().err


def test_simulate_prepare_from_the_shell_commands(tmp_path, capsys):
    world = tmp_path / "world"
    assert main(["simulate", "--out", str(world), "--plots", "400", "--species", "12", "--resolution", "0.5", "--quiet"]) == 0
    ws = tmp_path / "ws"
    assert main(["prepare", "--workspace", str(ws), "--splotopen", str(world / "splotopen"),
                 "--rasters", str(world / "rasters"), "--min-plots", "5", "--block-size", "2", "--quiet"]) == 0
    meta = json.loads((ws / "workspace.json").read_text())
    assert meta["n_plots"] == 400 and meta["n_predictors"] in (60, 61)  # a sparse header column may have no training value
    predictors = json.loads((ws / "predictors.json").read_text())
    assert [p["group"] for p in predictors][:19] == ["WorldClim"] * 19
    assert main(["info", "--workspace", str(ws)]) == 0
    assert "none yet" in capsys.readouterr().out
    assert main(["prepare", "--workspace", str(ws), "--splotopen", str(world / "splotopen"), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--plots", "600", "--species", "20", "--epochs", "3", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Bayes_AUC" in printed and "MaskSDM_AUC" in printed
    table = pd.read_csv(out / "workspace" / "reports" / "demo.csv")
    assert list(table["subset"]) == ["WorldClim", "SoilGrids", "Location", "Topography", "Metadata", "Human", "all"]
    bayes = table.set_index("subset")["bayes_auc"]
    assert bayes["all"] > 0.7 and (bayes <= bayes["all"] + 0.02).all()  # nothing beats the truth itself
    assert table["mean_auc"].between(0.3, 1).all()
    assert (out / "workspace" / "models" / "main" / "model.safetensors").exists()
    assert "top group is the strongest driver" in printed
    truth = pd.read_csv(out / "workspace" / "reports" / "demo_shapley_truth.csv")
    assert len(truth) > 0 and set(truth["top_group"]) <= set(table["subset"])
    assert main(["demo", "--out", str(out), "--quiet"]) == 2  # never silently overwritten
    assert "--force" in capsys.readouterr().err


def _wide_table(path, n_plots: int = 300):
    """A wide CSV: plot_id, lon, lat, predictor columns bio3, ph, noise, and 0/1 species columns."""
    from conftest import make_plot_data

    data = make_plot_data(n_plots, seed=2)
    plots = data.plots.rename(columns={"bio_1": "bio3", "PHIHOX": "ph"}).drop(columns=["Releve_area"])
    present = pd.crosstab(data.occurrences["plot_id"], data.occurrences["species"]).reindex(plots["plot_id"], fill_value=0)
    plots.join(present.clip(upper=1).reset_index(drop=True)).to_csv(path, index=False)
    return path


def _stack(path, descriptions):
    import numpy as np
    import rasterio
    from affine import Affine

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=30, width=40, count=2, dtype="float32", crs="EPSG:4326",
                       transform=Affine(1.0, 0.0, -10.0, 0.0, -1.0, 62.0)) as dst:
        dst.write(np.stack([np.full((30, 40), 10.0), np.arange(1200.0).reshape(30, 40)]).astype("float32"))
        for band, text in enumerate(descriptions or (), start=1):
            dst.set_band_description(band, text)
    return path


def test_prepare_sets_groups_and_prints_them(tmp_path, capsys):
    table = _wide_table(tmp_path / "plots.csv")
    _stack(tmp_path / "rasters" / "climate.tif", ["bio_1", "wc2.1_10m_bio_12"])
    (tmp_path / "groups.toml").write_text('noise = "Noise"\nph = "Texture"\n', encoding="utf-8")
    base = ["prepare", "--workspace", str(tmp_path / "ws"), "--table", str(table), "--layout", "wide",
            "--predictor-columns", "bio3,ph,noise", "--rasters", str(tmp_path / "rasters"), "--min-plots", "5",
            "--quiet"]
    assert main([*base, "--groups", "ph=Soil", "--groups-file", str(tmp_path / "groups.toml")]) == 0
    out = capsys.readouterr().out
    assert "catalogue names: bio3 -> bio_3" in out
    assert "  WorldClim: bio_1, bio_3, bio_12\n" in out and "  Soil: ph\n" in out and "  Noise: noise\n" in out
    predictors = json.loads((tmp_path / "ws" / "predictors.json").read_text())
    assert {p["name"]: p["group"] for p in predictors}["ph"] == "Soil"  # --groups wins over the file
    # an unknown predictor, a malformed entry, a file value that is not a group: one clear line each
    assert main([*base, "--force", "--groups", "pH=Soil"]) == 2
    err = capsys.readouterr().err
    assert "'pH', which is not a predictor of this data: choose among" in err and "'ph'" in err and "'bio_12'" in err
    assert main([*base, "--force", "--groups", "ph"]) == 2
    assert "is not NAME=GROUP" in capsys.readouterr().err
    (tmp_path / "groups.toml").write_text('wc2.1_bio_1 = "X"\n', encoding="utf-8")
    assert main([*base, "--force", "--groups-file", str(tmp_path / "groups.toml")]) == 2
    assert "quote names with dots" in capsys.readouterr().err


def test_prepare_refuses_a_multiband_raster_without_band_descriptions(tmp_path, capsys):
    table = _wide_table(tmp_path / "plots.csv", 100)
    _stack(tmp_path / "rasters" / "climate.tif", None)
    code = main(["prepare", "--workspace", str(tmp_path / "ws"), "--table", str(table), "--layout", "wide",
                 "--predictor-columns", "bio3,ph,noise", "--rasters", str(tmp_path / "rasters"), "--min-plots", "5",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "climate.tif' has 2 bands and no band description" in err and "set_band_description" in err
    assert not (tmp_path / "ws" / "workspace.json").exists()
