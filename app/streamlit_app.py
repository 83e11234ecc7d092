"""MSD Studio dashboard: ``streamlit run app/streamlit_app.py`` (see README for the one-command start)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts app/ on the path, not the repository
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="MSD Studio", page_icon=":material/science:", layout="wide")

PAGES = [
    st.Page(str(ROOT / "app" / "app_pages" / "overview.py"), title="Overview", icon=":material/home:", default=True),
    st.Page(str(ROOT / "app" / "app_pages" / "data_teacher.py"), title="Data & teacher", icon=":material/dataset:"),
    st.Page(str(ROOT / "app" / "app_pages" / "saliency.py"), title="Saliency explorer", icon=":material/insights:"),
    st.Page(str(ROOT / "app" / "app_pages" / "counterfactual.py"), title="Counterfactual editor",
            icon=":material/edit_note:"),
    st.Page(str(ROOT / "app" / "app_pages" / "distill.py"), title="Distill", icon=":material/model_training:"),
    st.Page(str(ROOT / "app" / "app_pages" / "compare.py"), title="Compare", icon=":material/compare_arrows:"),
]
try:
    st.navigation(PAGES).run()
except Exception as e:  # noqa: BLE001 - the pages' error boundary: a message, never a traceback
    from app.components.views import show_error

    show_error(e)
