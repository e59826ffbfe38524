"""The analysts' Streamlit dashboard and its read-only queries."""
