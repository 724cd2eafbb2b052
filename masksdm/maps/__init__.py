"""Range maps at any size: what a map shows (:mod:`~masksdm.maps.plan`, with the kernel that
predicts one strip of cells), the resumable COG outputs (:mod:`~masksdm.maps.writer`), the run
over a whole raster stack (:mod:`~masksdm.maps.predict`) and the same run on a dask cluster
(:mod:`~masksdm.maps.distributed`); novelty against the training plots (:mod:`~masksdm.maps.novelty`)
and the range change between two projections (:mod:`~masksdm.maps.change`).
"""

from masksdm.maps.change import ChangeResult, range_change
from masksdm.maps.plan import OUTPUTS, MapPlan, plan_maps, resolve_threshold
from masksdm.maps.predict import MapResult, predict_maps

__all__ = ["OUTPUTS", "ChangeResult", "MapPlan", "MapResult", "plan_maps", "predict_maps", "range_change",
           "resolve_threshold"]
