"""Sources: everything that reads (or writes) data before a workspace exists.

Plot data from sPlotOpen (:mod:`~masksdm.data.splotopen`) or any presence/absence table
(:mod:`~masksdm.data.tables`) in one in-memory form (:class:`PlotData`); the predictor catalogue
and its normalisation (:mod:`~masksdm.data.predictors`); predictor values from rasters at plot
coordinates (:mod:`~masksdm.data.rasters`) and raster stacks on one grid for maps
(:mod:`~masksdm.data.grid`); embedding vectors per plot (:mod:`~masksdm.data.embeddings`);
presence-only occurrence records, read and cleaned (:mod:`~masksdm.data.occurrences`), and
background points drawn on a raster stack (:mod:`~masksdm.data.background`); the real sources'
catalogue (:mod:`~masksdm.data.sources`, ``data/sources.toml``), their checked, resumable downloads
(:mod:`~masksdm.data.fetch`) and their layout under the predictor names (:mod:`~masksdm.data.layouts`).

Nothing here imports the workspace, the model or anything above them.
"""

from masksdm.data.background import sample_background
from masksdm.data.embeddings import EMBEDDINGS_DIR, read_embeddings, write_embeddings
from masksdm.data.grid import RasterStack, write_geotiff
from masksdm.data.occurrences import clean_occurrences, read_occurrences
from masksdm.data.plotdata import PlotData
from masksdm.data.predictors import Predictor, default_predictors, predictor_groups, subset_mask
from masksdm.data.rasters import extract_rasters, find_rasters, read_map
from masksdm.data.splotopen import load_splotopen
from masksdm.data.tables import load_presence_table

__all__ = [
    "EMBEDDINGS_DIR",
    "PlotData",
    "Predictor",
    "RasterStack",
    "clean_occurrences",
    "default_predictors",
    "extract_rasters",
    "find_rasters",
    "load_presence_table",
    "load_splotopen",
    "predictor_groups",
    "read_embeddings",
    "read_map",
    "read_occurrences",
    "sample_background",
    "subset_mask",
    "write_embeddings",
    "write_geotiff",
]
