"""The clinician's web page (Streamlit): ``streamlit run viewer/app.py``.

Layout and rendering only; every number comes from ``core``.
"""
