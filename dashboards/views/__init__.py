"""The dashboard's pages, run by `st.navigation` in `dashboards/app.py`.

Deliberately not named `pages/`: Streamlit treats a `pages/` folder next to the entry
script as a v1 multipage app until the first `st.navigation` call, so the first session
after a start could open `/<file name>` without the entry script's password gate.
"""
