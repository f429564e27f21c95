"""MedAI dashboard router: page config and navigation only."""
import streamlit as st

import ui

st.set_page_config(page_title="MedAI", page_icon=":material/stethoscope:", layout="wide")
ui.require_sign_in()  # only when MEDAI_REQUIRE_LOGIN is set (shared deployments)
ui.prewarm()  # once per server process: imports and models load in the background
pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/imaging.py", title="Imaging", icon=":material/radiology:", url_path="imaging"),
    st.Page("pages/records.py", title="Records", icon=":material/clinical_notes:", url_path="records"),
    st.Page("pages/vitals.py", title="Vital signs", icon=":material/monitor_heart:", url_path="vitals"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
]
if ui.is_admin():  # admins listed in the secrets only (the page checks again)
    pages.append(st.Page("pages/audit.py", title="Audit", icon=":material/history:", url_path="audit"))
# a few page runs at a time, the rest in arrival order; torch's threads: all cores alone, one when others run too
with ui.page_run(), ui.model_work():
    st.navigation(pages).run()
