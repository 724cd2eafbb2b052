"""``python -m masksdm`` runs the command line."""

import sys

from masksdm.cli import main

sys.exit(main())
