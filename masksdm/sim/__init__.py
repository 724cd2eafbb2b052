"""The virtual world: simulated rasters (:mod:`~masksdm.sim.landscape`), virtual species with
known niches (:mod:`~masksdm.sim.species`) and plots written in the sPlotOpen format
(:mod:`~masksdm.sim.simulate`), so that everything runs, and can be checked against the truth,
without downloading anything. It holds no real observation.
"""

from masksdm.sim.simulate import SCALES, WorldPaths, simulate_world

__all__ = ["SCALES", "WorldPaths", "simulate_world"]
