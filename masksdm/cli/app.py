"""``demo`` (the whole pipeline on the virtual world) and ``app`` (the dashboard)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from masksdm.cli._common import add_common, print_table
from masksdm.errors import MaskSDMError

__all__ = ["add_app", "add_demo", "cmd_app", "cmd_demo"]


def cmd_demo(args: argparse.Namespace) -> int:
    from masksdm.demo import run_demo
    from masksdm.model.config import preset

    config = preset("cpu")
    if args.epochs:
        config = config.with_epochs(args.epochs)
    result = run_demo(args.out, seed=args.seed, n_plots=args.plots, n_species=args.species, config=config,
                      force=args.force, progress=not args.quiet)
    table = result.table.rename(columns={"mean_auc": "MaskSDM_AUC", "bayes_auc": "Bayes_AUC", "mean_tss": "MaskSDM_TSS"})
    print("\nMaskSDM on the virtual world, test split (mean over species; Bayes_AUC: the truth's own AUC,")
    print("estimated as E[p | group] by k-NN for single groups):\n")
    print_table(table)
    sh = result.shapley
    print(f"\nExact Shapley values of the predictor groups vs the true drivers (chance {sh['chance']:.0%}):")
    print(f"  global (test AUC per species): top group is the strongest driver for {sh['global_top_is_strongest']:.0%} "
          f"of species, one of its drivers for {sh['global_top_is_a_driver']:.0%}")
    print(f"  local (probability per plot):  top |value| is the strongest driver for {sh['local_top_is_strongest']:.0%} "
          f"of plot x species, one of its drivers for {sh['local_top_is_a_driver']:.0%}")
    print(f"\nworld (sPlotOpen files, rasters, truth): {result.root / 'world'}")
    print(f"workspace:                               {result.workspace}")
    print(f"model:                                   {result.run_dir}")
    print(f"reports:                                 {result.workspace / 'reports'}")
    print(f"done in {result.seconds:.0f} s")
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    import subprocess

    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise MaskSDMError("the dashboard needs Streamlit: pip install 'masksdm[app]'") from None
    from masksdm._io import safe_name
    from masksdm.dashboard import page as dashboard_page
    from masksdm.workspace import Workspace

    workspace = args.workspace
    if workspace is None:
        workspace = Path("masksdm-demo") / "workspace"
        if not (workspace / "models" / safe_name(args.run) / "model.json").is_file():
            print(f"no demo workspace in {workspace.parent.resolve()}: building it first (about 2 minutes) ...")
            from masksdm.demo import run_demo

            run_demo(workspace.parent, progress=not args.quiet)
    Workspace(workspace)  # a clear error now rather than in the page
    future = list(args.future or [])
    demo_future = Path(workspace).parent / "world" / "future_rasters"
    if not future and args.workspace is None and demo_future.is_dir():
        future = [demo_future]
    missing = [str(f) for f in future if not f.exists()]
    if missing:
        raise MaskSDMError(f"no future rasters at {', '.join(missing)}")
    env = {**os.environ, dashboard_page.WORKSPACE_ENV: str(Path(workspace).resolve()), dashboard_page.RUN_ENV: args.run,
           dashboard_page.FUTURE_ENV: os.pathsep.join(str(Path(f).resolve()) for f in future)}
    # Always headless for Streamlit itself: a non-headless first run asks for an e-mail on standard
    # input and never serves the page when nobody answers. The browser is opened here instead.
    command = [sys.executable, "-m", "streamlit", "run", dashboard_page.__file__, "--server.port", str(args.port),
               "--server.address", args.address, "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    host = "localhost" if args.address in ("127.0.0.1", "localhost", "0.0.0.0", "::") else args.address
    url = f"http://{host}:{args.port}"
    if args.address not in ("127.0.0.1", "localhost", "::1"):
        print(f"sharing the dashboard on {args.address}: anyone who can reach this machine on port {args.port} "
              "can open it (the default, --address 127.0.0.1, keeps it to this machine)")
    print(f"MaskSDM dashboard on {url} (workspace {workspace}); Ctrl-C stops it")
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: process.terminate())  # a service manager's stop stops Streamlit too
    try:
        if not args.headless and _wait_until_serving(f"http://127.0.0.1:{args.port}" if host == "localhost" else url,
                                                     process):
            import webbrowser

            webbrowser.open(url)
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()


def _wait_until_serving(url: str, process, timeout: float = 60.0) -> bool:
    """True once Streamlit's health endpoint answers, False if the server stops or takes longer."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                return bool(answer.read() == b"ok")
        except OSError:
            time.sleep(0.3)
    return False


def add_demo(sub) -> None:
    """The ``demo`` command."""
    p = sub.add_parser("demo", help="simulate a virtual world, train and evaluate MaskSDM (a few minutes)")
    p.add_argument("--out", type=Path, default=Path("masksdm-demo"), help="output folder (default: ./masksdm-demo)")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--plots", type=int, help="number of plots (default 5000)")
    p.add_argument("--species", type=int, help="number of virtual species (default 300)")
    p.add_argument("--epochs", type=int, help="maximum training epochs (default: the cpu preset's)")
    p.add_argument("--force", action="store_true", help="rebuild into a non-empty --out")
    add_common(p)
    p.set_defaults(func=cmd_demo)


def add_app(sub) -> None:
    """The ``app`` command."""
    p = sub.add_parser("app", help="the dashboard: map any species from any predictors, and see why")
    p.add_argument("--workspace", type=Path, help="workspace with a trained model (default: the demo, built if missing)")
    p.add_argument("--run", default="main", help="model run in the workspace (default main)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1", help="network address to serve on (default 127.0.0.1: this "
                   "machine only; 0.0.0.0 shares it with the network on purpose)")
    p.add_argument("--future", nargs="+", type=Path, metavar="RASTERS",
                   help="rasters of a future climate on the same grid (e.g. from `masksdm fetch worldclim-future`): "
                        "switch the maps between current and future, and show the range change (default for the "
                        "demo: its future climate)")
    p.add_argument("--headless", action="store_true", help="do not open a browser")
    add_common(p)
    p.set_defaults(func=cmd_app)
