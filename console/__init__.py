"""Streamlit console of ltm: `streamlit run console/app.py`."""
