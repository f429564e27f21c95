"""Home: what MedAI is, the workspaces, the models and their cards, and the intended use."""
import re

import streamlit as st

import ui
from medai_core.errors import MedAIError
from medai_core.models import MODELS, assets_dir, card_headline, get_spec, read_card_markdown

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
                "patient identifiers hidden. Three image models: paediatric chest X-ray (normal / bacterial / "
                "viral pneumonia) and breast ultrasound (pretrained EfficientNet-Lite0, and the original CNN), the "
                "right one chosen for each scan by its out-of-distribution guard; Grad-CAM, attention map, "
                "Integrated Gradients, SmoothGrad and occlusion overlays.")
    st.page_link("pages/imaging.py", label="Open Imaging", icon=":material/arrow_forward:")
with c2:
    st.subheader(":material/clinical_notes: Records")
    st.markdown("In-hospital mortality risk from a day-3 record (form or CSV batch) and the specialty of a "
                "clinical note, with Shapley / Integrated Gradients attributions and the models' attention maps.")
    st.page_link("pages/records.py", label="Open Records", icon=":material/arrow_forward:")
with c3:
    st.subheader(":material/monitor_heart: Vital signs")
    st.markdown("ICU vital signs forecast 6 hours ahead with 10/50/90% quantiles, normal ranges and threshold "
                "warnings; the model's attention over past hours and Integrated Gradients over hour x signal.")
    st.page_link("pages/vitals.py", label="Open Vital signs", icon=":material/arrow_forward:")

st.header("In every workspace")
st.markdown(
    "- **Can I trust this map?** A sanity check re-runs the explainer with the model's layers randomised from the "
    "output down (trained and randomised maps side by side, rank correlation, verdict) and deletes / inserts the "
    "most-attributed parts of the input against random orders.\n"
    "- **How sure?** The model's reliability diagram on its held-out split with this case on it, and an adjustable "
    "operating threshold with sensitivity, specificity, PPV and NPV on that split.\n"
    "- **How fast?** Every result shows its latency; long attributions show an estimate, progress and Cancel.\n"
    "- **What we changed in your data.** One bad cell, reading or row never refuses a file: it is set aside, "
    "listed with its row, time and value, and the rest is scored; the case report lists the same changes.\n"
    "- **Take it away.** A case report (PDF, or ZIP with every figure as PNG and the CSVs) without patient "
    "identifiers unless you include them, attention and attribution CSVs, and a de-identified DICOM "
    "(DICOM PS3.15 basic profile).")

st.header("Models")
for name in MODELS:
    spec = get_spec(name)
    try:
        read_card_markdown(name)
    except MedAIError as err:
        st.warning(f"{name}: {err}")
        continue
    st.markdown(f"**{name}** · {spec.description}")
    for col, (label, value) in zip(st.columns(4), card_headline(name)):
        col.metric(label, value)
    with st.expander(f"Model card: {name}"):
        # cards are markdown files with relative figure links; figures are shown from assets/
        for k, part in enumerate(re.split(r"!\[[^\]]*\]\(([\w.\-]+)\)", read_card_markdown(name))):
            if k % 2:
                st.image(str(assets_dir() / part), width=360)
            else:
                st.markdown(part)
