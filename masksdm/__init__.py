"""MaskSDM: multi-species distribution models that work with any subset of predictors."""

__version__ = "0.1.0"
