"""MaskSDM dashboard: `streamlit run app/streamlit_app.py` (or `masksdm app`).

The page lives in the library (masksdm.dashboard.page) so that an installed package runs it too;
set MASKSDM_WORKSPACE to open another workspace than masksdm-demo/workspace.
"""

from masksdm.dashboard.page import main

if __name__ == "__main__":  # Streamlit runs the page as __main__; a process spawned from it must not
    main()
