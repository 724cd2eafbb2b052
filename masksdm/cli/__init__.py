"""The ``masksdm`` command line, one module per command group: :mod:`~masksdm.cli.data`
(simulate, prepare, info), :mod:`~masksdm.cli.model` (train, evaluate, compare),
:mod:`~masksdm.cli.explain` (shapley), :mod:`~masksdm.cli.maps` (predict),
:mod:`~masksdm.cli.embed` (embed) and :mod:`~masksdm.cli.app` (demo, app); :mod:`~masksdm.cli.main`
assembles them. Each command imports the library only when it runs, so ``masksdm --help`` starts fast.
"""

from masksdm.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
