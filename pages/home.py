"""Home: what MedAI is, the workspaces, the models and their cards, and the intended use."""
import streamlit as st

import ui
from medai_core.errors import MedAIError
from medai_core.models import MODELS, get_spec
from medai_core.models.spec import read_card, read_card_markdown

ui.route_via_app()
st.title("MedAI")
st.markdown("Real models trained on real data, with every prediction explained on screen.")
st.info(ui.INTENDED_USE + " Not a medical device; not for screening or for use on a patient without review.",
        icon=":material/info:")

st.header("Workspaces")
c1, c2, c3 = st.columns(3)
with c1:
    st.subheader(":material/radiology: Imaging")
    st.markdown("Upload DICOM, PNG, JPEG, BMP or TIFF scans; window/level, frames, zoom and metadata with "
                "patient identifiers hidden; breast-ultrasound classification with Grad-CAM, Integrated "
                "Gradients, SmoothGrad and occlusion overlays, and an out-of-distribution guard.")
    st.page_link("pages/imaging.py", label="Open Imaging", icon=":material/arrow_forward:")
with c2:
    st.subheader(":material/clinical_notes: Records")
    st.markdown("Structured records and clinical notes with per-feature attributions and attention maps. "
                "*Not built yet.*")
with c3:
    st.subheader(":material/monitor_heart: Vital signs")
    st.markdown("Vital-sign forecasts with prediction intervals and temporal attributions. *Not built yet.*")

st.header("Models")
for name in MODELS:
    spec = get_spec(name)
    try:
        card = read_card(name)
    except MedAIError as err:
        st.warning(f"{name}: {err}")
        continue
    t = card["test"]
    st.markdown(f"**{name}** · {spec.description}")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Test accuracy", f"{t['accuracy']:.1%}")
    m2.metric("Malignant AUROC", f"{t['malignant_auroc']:.3f}")
    m3.metric("ECE after calibration", f"{t['ece_after']:.3f}")
    m4.metric("Test images", t["n"])
    with st.expander(f"Model card: {name}"):
        st.markdown(read_card_markdown(name))
