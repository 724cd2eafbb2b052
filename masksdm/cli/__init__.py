"""placeholder"""
from masksdm.cli.main import main

__all__ = ["main"]
