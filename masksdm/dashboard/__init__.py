"""The dashboard: what it shows, computed without Streamlit (:mod:`~masksdm.dashboard.view`),
how it is drawn (:mod:`~masksdm.dashboard.render`), and the Streamlit page that lays out the
widgets (:mod:`~masksdm.dashboard.page`, imported only by ``streamlit run``).
"""

from masksdm.dashboard.render import colorize, geotiff_bytes, png_bytes
from masksdm.dashboard.view import Dashboard, Place, search_species

__all__ = ["Dashboard", "Place", "colorize", "geotiff_bytes", "png_bytes", "search_species"]
