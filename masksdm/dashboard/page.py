"""The Streamlit page of the dashboard: widgets and layout only (computations: masksdm.dashboard.view).

Run with ``masksdm app [--workspace DIR]`` (or ``streamlit run app/streamlit_app.py``); the
workspace comes from ``$MASKSDM_WORKSPACE`` (default ``masksdm-demo/workspace``).
"""

from __future__ import annotations

import base64
import os

import numpy as np
import pandas as pd
import streamlit as st

from masksdm._io import safe_name
from masksdm.dashboard.render import colorize, geotiff_bytes, png_bytes
from masksdm.dashboard.view import Dashboard, search_species
from masksdm.errors import MaskSDMError
from masksdm.plots import CHANGE_COLORS, RANGE_COLORS

__all__ = ["DEFAULT_WORKSPACE", "FUTURE_ENV", "RUN_ENV", "WORKSPACE_ENV", "main", "open_dashboard"]

WORKSPACE_ENV = "MASKSDM_WORKSPACE"
RUN_ENV = "MASKSDM_RUN"
FUTURE_ENV = "MASKSDM_FUTURE"  # future rasters, os.pathsep-separated
DEFAULT_WORKSPACE = "masksdm-demo/workspace"
LAYERS = ("Probability", "Binary range", "Species richness", "Novelty (MESS)")
CHANGE_LAYER = "Range change"  # with future rasters
RULES = {"max TSS (validation)": "max_tss", "sensitivity 0.9": "sensitivity:0.9", "stored in the model": "model",
         "fixed value": None}


@st.cache_resource(show_spinner="Loading the model and the rasters ...")
def open_dashboard(workspace: str, run: str, full_detail: bool, future: str = "") -> Dashboard:
    return Dashboard(workspace, run, max_cells=None if full_detail else 15_000,
                     future=future.split(os.pathsep) if future else None)


def _legend(vmin: float, vmax: float, label: str, cmap: str) -> bytes:
    import io

    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(4.0, 0.9))
    if cmap == "range":  # two classes, not a scale
        ax.axis("off")
        ax.legend(handles=[Patch(color=RANGE_COLORS[0], label="absent"), Patch(color=RANGE_COLORS[1], label=label)],
                  loc="center", ncol=2, frameon=False, fontsize=8)
    elif cmap == "change":
        ax.axis("off")
        names = ("lost", "kept", "absent in both", "gained")
        ax.legend(handles=[Patch(color=c, label=n) for c, n in zip(CHANGE_COLORS, names, strict=True)],
                  loc="center", ncol=4, frameon=False, fontsize=8)
    else:
        fig.subplots_adjust(left=0.04, right=0.96, top=0.95, bottom=0.55)
        ax.imshow(np.linspace(0, 1, 256)[None, :], aspect="auto", cmap=cmap, extent=(vmin, vmax, 0, 1))
        ax.set_yticks([])
        ax.set_xlabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def _deck(board: Dashboard, grid: np.ndarray, *, vmin: float, vmax: float, cmap: str, opacity: float,
          place: tuple[float, float] | None):
    import pydeck as pdk

    warped, (west, south, east, north) = board.web_mercator(grid)
    image = "data:image/png;base64," + base64.b64encode(png_bytes(_colors(warped, vmin, vmax, cmap, opacity))).decode()
    lon, lat = board.cell_lonlat()
    cells = pd.DataFrame({"lon": lon, "lat": lat})
    spacing = 111_000 * np.median(np.abs(np.diff(np.unique(lat)))) if len(np.unique(lat)) > 1 else 10_000
    layers = [
        pdk.Layer("BitmapLayer", id="map", image=pdk.types.String(image), bounds=[west, south, east, north]),
        # invisible cell centres: a click picks one, and the page explains that place
        pdk.Layer("ScatterplotLayer", id="cells", data=cells, get_position="[lon, lat]", get_radius=float(spacing) * 0.7,
                  get_fill_color=[0, 0, 0, 0], pickable=True, radius_min_pixels=2),
    ]
    if place is not None:  # the place being explained
        layers.append(pdk.Layer("ScatterplotLayer", id="place", data=pd.DataFrame({"lon": [place[0]], "lat": [place[1]]}),
                                get_position="[lon, lat]", get_radius=float(spacing), radius_min_pixels=5,
                                get_fill_color=[230, 30, 30, 230], stroked=True, get_line_color=[255, 255, 255],
                                line_width_min_pixels=1))
    view = pdk.ViewState(longitude=(west + east) / 2, latitude=(south + north) / 2, zoom=3)
    return pdk.Deck(layers=layers, initial_view_state=view, map_style="light",  # Carto's base map, no token
                    tooltip={"text": "click to explain this place"})


def _colors(grid: np.ndarray, vmin: float, vmax: float, cmap: str, opacity: float) -> np.ndarray:
    if cmap == "change":  # the codes -2 .. 1 of masksdm change, one colour each
        return colorize(grid + 2, vmin=0, vmax=3, cmap="change", opacity=opacity, colors=CHANGE_COLORS)
    return colorize(grid, vmin=vmin, vmax=vmax, cmap=cmap, opacity=opacity)


def main() -> None:
    st.set_page_config(page_title="MaskSDM", layout="wide")
    workspace = os.environ.get(WORKSPACE_ENV, DEFAULT_WORKSPACE)
    run = os.environ.get(RUN_ENV, "main")
    st.sidebar.title("MaskSDM")
    full_detail = st.sidebar.toggle("Full map detail (slower)", key="detail")
    try:
        board = open_dashboard(workspace, run, full_detail, os.environ.get(FUTURE_ENV, ""))
    except (MaskSDMError, OSError) as err:
        st.error(f"Cannot open the workspace '{workspace}': {err}")
        st.info("Build the demo with `masksdm demo`, or start the app on your own workspace with "
                "`masksdm app --workspace DIR` (a workspace with a trained model and its rasters).")
        st.stop()

    # --- species ---
    query = st.sidebar.text_input("Search species", key="query", placeholder="part of a name, e.g. 'quer rob'")
    matches = search_species(query, board.species, limit=200)
    if not matches:
        st.sidebar.warning(f"No species matches '{query}'.")
        st.stop()
    species = st.sidebar.selectbox(f"Species ({len(matches)} shown of {len(board.species):,})", matches, key="species")

    # --- predictors ---
    st.sidebar.subheader("Predictors")
    groups = board.groups()
    on = [g for g in groups if st.sidebar.checkbox(f"{g} ({len(groups[g])})", value=True, key=f"group_{g}")]
    with st.sidebar.expander("Leave out single predictors"):
        exclude = st.multiselect("Leave out", [n for g in on for n in groups[g]], key="exclude")
    if board.plot_level():
        with st.sidebar.expander(f"Not on maps ({len(board.plot_level())})"):
            st.caption("Plot-level predictors (or without a raster): masked on every map. "
                       + ", ".join(board.plot_level()))
    visible = board.visible(on, exclude=exclude)

    # --- map options ---
    st.sidebar.subheader("Map")
    future = "future" in board.scenarios
    scenario = "current"
    if future:
        climate = st.sidebar.radio("Climate", ["current", "future"], key="scenario", horizontal=True)
        scenario = str(climate)
    layer = st.sidebar.radio("Layer", LAYERS + ((CHANGE_LAYER,) if future else ()), key="layer")
    hide_novel = st.sidebar.checkbox("Hide cells outside the training range (MESS < 0)", key="hide_novel")
    rule_label = st.sidebar.selectbox("Threshold rule", list(RULES), key="rule")
    fixed = st.sidebar.slider("Threshold", 0.0, 1.0, 0.5, 0.01, key="threshold",
                              disabled=RULES[rule_label] is not None)
    opacity = st.sidebar.slider("Opacity", 0.1, 1.0, 0.8, 0.05, key="opacity")

    summary = board.species_summary(species)
    st.title(species if layer != "Species richness" else f"Species richness ({len(board.species):,} species)")
    facts = [f"{summary['plots']} plots ({summary['prevalence']:.1%})" if summary["plots"] is not None else None,
             f"{int(visible.sum())} of {len(visible)} predictors on"]
    st.caption(" · ".join(f for f in facts if f))
    if not visible.any():
        st.warning("Switch at least one predictor group on to see a map.")
        st.stop()

    rule = RULES[rule_label]
    try:
        threshold = board.threshold(species, rule, visible) if rule else fixed
    except MaskSDMError as err:  # e.g. a model stored without thresholds
        st.sidebar.warning(f"{err}; the fixed value is used")
        threshold = fixed
    if layer == "Probability":
        grid, vmin, vmax, cmap, label = (board.probability(species, visible, scenario), 0.0, 1.0, "viridis",
                                         "probability of presence")
    elif layer == "Binary range":
        probability = board.probability(species, visible, scenario)
        grid = (probability >= threshold).astype(np.float32)
        grid[np.isnan(probability)] = np.nan
        vmin, vmax, cmap, label = 0.0, 1.0, "range", f"present (probability >= {threshold:.2f})"
    elif layer == CHANGE_LAYER:
        grid, vmin, vmax, cmap, label = board.change(species, visible, threshold), -2.0, 1.0, "change", "range change"
    elif layer == "Novelty (MESS)":
        try:
            grid = board.novelty(visible, scenario)[0]
        except MaskSDMError as err:
            st.warning(str(err))
            st.stop()
        vmin, vmax, cmap, label = -50.0, 50.0, "RdBu", "MESS: similarity to the training plots (< 0: outside their range)"
    else:
        grid = board.richness(visible, scenario)
        vmin, vmax, cmap, label = 0.0, float(np.nanmax(grid)) or 1.0, "magma", "expected number of species"
    if hide_novel and layer != "Novelty (MESS)":
        try:
            similarity = board.novelty(visible, "future" if layer == CHANGE_LAYER else scenario)[0]
            grid = np.where(similarity < 0, np.nan, grid).astype(np.float32)
        except MaskSDMError as err:
            st.sidebar.caption(str(err))
    if layer in ("Probability", "Binary range", CHANGE_LAYER):
        st.caption(f"threshold {threshold:.3f} ({rule_label})" + (f" · {scenario} climate" if future else ""))

    # a click on the map (the chart's selection, known before it is drawn again) picks the place to explain
    selection = (st.session_state.get("map") or {}).get("selection") or {}
    picked = (selection.get("objects") or {}).get("cells") or []
    if picked and (picked[0]["lon"], picked[0]["lat"]) != st.session_state.get("picked"):
        st.session_state["picked"] = (picked[0]["lon"], picked[0]["lat"])
        st.session_state["lon"], st.session_state["lat"] = round(picked[0]["lon"], 3), round(picked[0]["lat"], 3)
    if "lon" not in st.session_state:  # start at the middle of the land cells
        cell_lon, cell_lat = board.cell_lonlat()
        st.session_state["lon"], st.session_state["lat"] = round(float(np.median(cell_lon)), 3), round(
            float(np.median(cell_lat)), 3)

    left, right = st.columns([3, 2])
    with left:
        st.pydeck_chart(_deck(board, grid, vmin=vmin, vmax=vmax, cmap=cmap, opacity=opacity,
                              place=(st.session_state["lon"], st.session_state["lat"])),
                        on_select="rerun", selection_mode="single-object", key="map")
        st.image(_legend(vmin, vmax, label, cmap))
        d1, d2, d3 = st.columns(3)
        name = safe_name(species) if layer != "Species richness" else "richness"
        d1.download_button("GeoTIFF", geotiff_bytes(grid, board, description=label), f"{name}.tif",
                           mime="image/tiff", key="dl_tif")
        d2.download_button("PNG", png_bytes(_colors(grid, vmin, vmax, cmap, 1.0)),
                           f"{name}.png", mime="image/png", key="dl_png")

    with right:
        st.subheader(f"Why here? ({species})" if layer == "Species richness" else "Why here?")
        st.caption("Click the map, or type a place: exact Shapley values of the switched-on groups.")
        lon = st.number_input("Longitude", key="lon", format="%.3f")
        lat = st.number_input("Latitude", key="lat", format="%.3f")
        place = board.place(lon, lat)
        tables = []
        if place is None:
            st.info("No map cell with data there.")
        else:
            local = board.local(species, place, visible, scenario)
            values = pd.DataFrame({"group": local.players, "Shapley value": local.values[0, 0]})
            st.bar_chart(values, x="group", y="Shapley value", horizontal=True, sort="-Shapley value")
            st.caption(f"probability {local.full_value[0, 0]:.3f} = base {local.base_value[0, 0]:.3f} "
                       "(nothing known) + the bars")
            tables.append(pd.DataFrame({"kind": "local", "lon": lon, "lat": lat, "player": local.players,
                                        "value": local.values[0, 0]}))
        st.subheader("What matters overall")
        glob = board.global_values(species)
        st.bar_chart(pd.DataFrame({"group": glob.players, "AUC points": glob.values}), x="group", y="AUC points",
                     horizontal=True, sort="-AUC points")
        auc, low, high, n_pres = board.test_auc(species)
        st.caption(f"test AUC {auc:.3f} with all groups (95 % interval {low:.3f}-{high:.3f}, "
                   f"{n_pres} test presences); the bars share the gain over 0.5")
        tables.append(pd.DataFrame({"kind": "global (AUC x100)", "lon": np.nan, "lat": np.nan,
                                    "player": glob.players, "value": glob.values}))
        d3.download_button("Shapley CSV", pd.concat(tables).to_csv(index=False), f"{name}_shapley.csv",
                           mime="text/csv", key="dl_csv")

    st.subheader("Response curve")
    scalar = [p.name for p in board.card.predictors if not p.is_embedding]
    c1, c2 = st.columns([1, 2])
    predictor = c1.selectbox("Predictor", scalar, key="curve_predictor")
    mode = c1.radio("Other predictors", ["masked", "at the test plots' values"], key="curve_mode")
    curve = board.response(species, predictor, mode="alone" if mode == "masked" else "others")
    c2.line_chart(curve, x=predictor, y="probability")


if __name__ == "__main__":
    main()
