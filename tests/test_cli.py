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
    assert listed == ["demo", "simulate", "prepare", "train", "evaluate", "compare", "cv", "shapley", "embed",
                      "predict", "app", "info"]


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
    assert meta["n_plots"] == 400 and meta["n_predictors"] == 61
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
