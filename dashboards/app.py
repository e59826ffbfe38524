"""finsent dashboard: `finsent dashboard` (or `streamlit run dashboards/app.py`).

Entry script of a multipage app (`st.navigation`): Overview, Companies, Alerts, Explorer,
Model, from `dashboards/views/`. Every page runs through this script, so the access gate
and the shared sidebar cannot be skipped. The page paths are part of the outside of the product: alert messages link to
`<dashboard_url>/Alerts?alert=<id>`.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # `streamlit run dashboards/app.py` from a checkout
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from dashboards import ui  # noqa: E402

PAGES_DIR = Path(__file__).resolve().parent / "views"  # not "pages/": see views/__init__.py

st.set_page_config(page_title="finsent", page_icon=":material/monitoring:", layout="wide")

ui.settings()  # read once (cached); a bad configuration stops here with its reason
if ui.gate():
    ui.sidebar()
    nav = st.navigation(
        [
            st.Page(PAGES_DIR / "overview.py", title="Overview", url_path="Overview", default=True),
            st.Page(PAGES_DIR / "companies.py", title="Companies", url_path="Companies"),
            st.Page(PAGES_DIR / "alerts.py", title="Alerts", url_path="Alerts"),
            st.Page(PAGES_DIR / "explorer.py", title="Explorer", url_path="Explorer"),
            st.Page(PAGES_DIR / "model.py", title="Model", url_path="Model"),
        ]
    )
    nav.run()
