"""The workspace: the folder of tables every command and the app share (:mod:`.core`), built from
plot tables (:func:`prepare_workspace`) or from presence-only occurrence records
(:func:`prepare_occurrences`, :mod:`.occurrences`)."""

from masksdm.workspace.core import BACKGROUND, MAX_LEVELS, SPLITS, Workspace, prepare_workspace
from masksdm.workspace.occurrences import prepare_occurrences

__all__ = ["BACKGROUND", "MAX_LEVELS", "SPLITS", "Workspace", "prepare_occurrences", "prepare_workspace"]
