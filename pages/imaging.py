"""Imaging workspace: upload a scan, view it as a radiologist would, classify it, see why."""
import time

import streamlit as st

import ui
from medai_core.errors import MedAIError
from medai_core.models import get_spec
from medai_core.workspaces import imaging as W

K_MODEL, K_SOURCE, K_UPLOAD, K_SAMPLE = "imaging.model", "imaging.source", "imaging.upload", "imaging.sample"
K_METHOD, K_TARGET, K_REVEAL = "imaging.method", "imaging.target", "imaging.reveal"
# one or two model passes: the run waits for them (queued behind other sessions' under load) and draws them itself;
# polling for them ended in a second full run (issue 18). Slower explainers are polled after a second.
QUICK_WAIT_S = {"gradcam": 5.0, "attention": 5.0}

ui.route_via_app()
st.title("Imaging")
st.caption(ui.INTENDED_USE)
with st.sidebar:
    model_name = ui.model_picker("image", K_MODEL, auto="Automatic: the right model for each scan")
    source = st.radio("Scan", ["Upload a file", "Demo scan"], key=K_SOURCE, horizontal=True)
    if source == "Upload a file":
        up = st.file_uploader("DICOM, PNG, JPEG, BMP or TIFF (checked by content)", key=K_UPLOAD)
        data = up.getvalue() if up is not None else None
        file_name = up.name if up is not None else None
    else:
        sample = st.selectbox("Demo scan (credited chest films; real DICOMs shipped with pydicom)", W.available_samples(), key=K_SAMPLE)
        st.caption(W.SAMPLES[sample][1])
        data = W.sample_path(sample).read_bytes()
        file_name = W.sample_path(sample).name
if data is None:
    st.info("Upload a scan in the sidebar, or choose a demo scan. Files stay in memory and are never saved.")
    st.stop()

sha = ui.digest(data, full=True)  # the audit trail keeps this, never the scan
key = sha[:16]
try:
    scan = ui.cached_scan(key, data)
except MedAIError as err:
    ui.show_error(err)
    st.stop()

with st.sidebar:
    frame = st.slider("Frame", 1, scan.n_frames, 1, key=f"imaging.frame.{key}") - 1 if scan.n_frames > 1 else 0
    try:
        if model_name:  # forced by the user
            spec, model = get_spec(model_name), ui.cached_model(model_name)
            x = W.prepare_input(scan, spec, frame)
            route = W.forced(model_name, W.predict(model, spec, x, keep_grid=True), scan)
        else:  # every routed model's OOD guard decides, DICOM Modality / BodyPartExamined as hints
            route = ui.cached_route(key, frame, scan)
            spec, model = get_spec(route.model), ui.cached_model(route.model)
            x = W.prepare_input(scan, spec, frame)
    except MedAIError as err:
        ui.show_error(err)
        st.stop()
    model_name, pred = route.model, route.prediction

    st.subheader("Explanation")
    methods = W.explainers_for(spec)
    if st.session_state.get(K_METHOD) not in methods:  # e.g. the attention map, then a model without attention
        st.session_state[K_METHOD] = "gradcam"
    method = st.selectbox("Explainer", methods, key=K_METHOD,
                          format_func=lambda n: W.EXPLAINERS.entry(n).meta["label"])
    target = st.selectbox("Explain class", spec.labels, index=spec.labels.index(pred.label), key=f"{K_TARGET}.{key}.{model_name}")
    meta = W.EXPLAINERS.entry(method).meta
    params: dict = {}
    if method == "integrated_gradients":
        params["baseline"] = st.selectbox("IG baseline", W.IG_BASELINES, key="imaging.ig_base")
        params["n_steps"] = st.select_slider("IG steps (doubled while the completeness error is over 1%)", [16, 32, 64, 128], 64, key="imaging.ig_steps")
    elif method == "occlusion":
        params["window"] = st.select_slider("Occlusion window (px)", [8, 16, 32], 16, key="imaging.occ_win")
        params["stride"] = params["window"] // 2
    elif method == "smoothgrad":
        params["nt_samples"] = st.select_slider("Noise samples", [8, 16, 32, 64], 16, key="imaging.sg_n")

st.markdown(f"**{scan.source}** · {scan.shape[1]} x {scan.shape[0]} px · frame {frame + 1} of {scan.n_frames}"
            + (f" · {scan.modality}" if scan.modality else ""))
st.info(f"**Model: {W.describe(model_name)}.** {route.reason}"
        + ("" if route.forced else " Choose another in the sidebar (Model) to override."), icon=":material/alt_route:")
ui.changes_panel((), key="imaging.quality", what="value")  # a scan is read as it is: nothing is set aside
ui.audit("predict", "imaging", model_name, sha=sha, params={"frame": frame, "routing": "forced" if route.forced else "automatic"},
         summary={"label": pred.label, "probability": round(float(pred.probabilities[pred.label]), 4), "ood": bool(pred.ood)})
p1, p2 = st.columns([2, 3])
with p1:
    if pred.ood:
        what = ("**No image model recognises this scan**" if not route.forced and route.candidates else
                f"**This scan does not look like {W.looks_like(model_name)}**")
        why = (f"OOD score {pred.ood_score:.1f} > {pred.ood_threshold:.1f}" if pred.ood_score > pred.ood_threshold else
               f"the DICOM header says {scan.modality}, which {model_name} does not read; OOD score "
               f"{pred.ood_score:.1f}, threshold {pred.ood_threshold:.1f}")
        st.warning(f"{what} ({why}). The prediction is greyed out and must not be used.", icon=":material/block:")
    if pred.ood:
        st.markdown(f"Prediction (unreliable)  \n### :gray[{pred.label} · {pred.probabilities[pred.label]:.0%}]")
    else:
        st.metric("Prediction", pred.label, f"{pred.probabilities[pred.label]:.0%} calibrated", delta_color="off")
    st.caption(f"{spec.name} · prediction {pred.seconds * 1000:.0f} ms · the model sees the file's default window "
               f"in grey at {spec.input_size[0]} x {spec.input_size[1]}")
p2.plotly_chart(ui.figure(W.probability_figure, ui.Keyed(pred, ("pred", key, frame, model_name)), muted=pred.ood),
                key="imaging.probs")

side_attention = bool(spec.extra.get("attention")) and method != "attention"  # shown beside the chosen map
job_key = f"{key}|{frame}|{model_name}|{method}|{target}|{sorted(params.items())}"
est = ui.estimate(model_name, spec.modality, x, method, params) if method != "gradcam" else None
est_short = "" if est is None else f"estimated {est.seconds:.1f} s"
est_text = "" if est is None else (est_short + (f" (up to {est.seconds_max:.1f} s if the steps double)"
                                                if est.seconds_max > est.seconds * 1.05 else "") + f": {est.note}")
job = ui.submit_job(job_key, meta["label"], lambda progress: W.explain(model, spec, x, method, target, progress,
                                                                        prediction=pred, **params),
                     wait_s=QUICK_WAIT_S.get(method, 1.0))
polling = not job.done
exp_done = job.future.result() if job.done and job.future.exception() is None else None
exp_params = {"method": method, "target": target, "frame": frame, **params}
if exp_done is not None:
    ui.audit("explain", "imaging", model_name, sha=sha, params=exp_params, summary={"seconds": round(exp_done.seconds, 3)})
# what the viewer shows now, read by the case report when it is built (the viewer reruns on its own)
shown: dict = st.session_state.setdefault("imaging.shown", {})


def cancel_explanation() -> None:
    """Stops the running explainer at its next model pass and returns to Grad-CAM (tens of ms)."""
    ui.forget_job(job_key)
    st.session_state[K_METHOD] = "gradcam"


def view_controls() -> dict:
    """Window, zoom and the heatmap's look, in a row above the images. They change only what is drawn (the model
    always sees the file's default window), so moving one reruns the viewer alone."""
    c = st.columns([1.4, 1.4, 1.4, 1, 1, 1, 1])
    presets = W.window_presets(scan)
    preset = c[0].selectbox("Window preset", list(presets), key=f"imaging.preset.{key}")
    window = presets[preset]
    if window is not None:
        lo, hi = scan.value_range
        span = max(hi - lo, 1.0)
        level = c[1].slider("Level (centre)", lo - span, hi + span, float(window[0]), key=f"imaging.c.{key}.{preset}")
        width = c[2].slider("Width", 1.0, 2 * span + 1, float(min(window[1], 2 * span + 1)), key=f"imaging.w.{key}.{preset}")
        window = (level, width)
    voi = preset == W.VOI_LUT_PRESET
    v = {"window": window, "use_voi_lut": voi,
         "zoom": c[3].slider("Zoom", 1.0, 8.0, 1.0, 0.5, key="imaging.zoom", help="Drag to pan; scroll or box-zoom too"),
         "opacity": c[4].slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="imaging.opacity"),
         "cmap": c[5].selectbox("Colour map", W.COLORMAPS, key="imaging.cmap"),
         "sign": c[6].radio("Show", ["positive", "absolute"], key="imaging.sign", disabled=not meta["signed"],
                            help="For signed methods: evidence for the class only, or its magnitude either way")}
    # the rendered view, keyed by what determines it (its figures are then keyed by that key, not its pixels)
    v["display"] = ui.Keyed(ui.value(W.render, ui.Keyed(scan, ("scan", key)), frame, window, use_voi_lut=voi),
                            ("display", key, frame, window, voi))
    return v


@st.fragment(run_every=None if job.done else 0.3)
def explanation_view(v: dict) -> None:
    """Polls the background explanation, so the rest of the page never waits for it."""
    if not job.done:
        st.progress(job.progress, text=f"Computing {meta['label']} for '{target}' ({meta['passes']})… "
                                        f"{job.progress:.0%}, {time.perf_counter() - job.started:.1f} s"
                                        + (f"; {est_text}" if est_text else ""))
        st.button("Cancel", key="imaging.cancel", icon=":material/cancel:", on_click=cancel_explanation)
        return
    if polling:
        st.rerun()  # the job finished while polling: redraw once, without polling
    try:
        exp = job.future.result()
    except Exception as err:  # noqa: BLE001 - shown as a message, never a traceback
        ui.show_error(err)
        return
    st.plotly_chart(ui.map_view(v["display"], exp.attributions, meta["signed"], v["sign"], v["opacity"],
                              v["cmap"], f"{meta['label']}: '{target}'", v["zoom"], width_hint=360 if side_attention else 460),
                    key="imaging.overlay")
    facts = [f"{meta['label']} in {exp.seconds * 1000:.0f} ms" + (f" ({est_short})" if est_short else "")]
    if "convergence_delta" in exp.diagnostics:
        d = exp.diagnostics
        facts.append(f"IG convergence delta {d['convergence_delta']:.4f} = {d['relative_delta']:.1%} of the "
                     f"output difference {d['output_difference']:.3f}")
    st.caption(" · ".join(facts))


@st.fragment
def viewer() -> None:
    """The scan, its maps and their sanity check, under their view controls: a window, zoom or heatmap-style
    change reruns this alone (issue 18: a slider move in tens of ms, not a page run)."""
    v = view_controls()
    col_a, col_b, *col_c = st.columns(3 if side_attention else 2)
    col_a.plotly_chart(ui.scan_view(v["display"], "Scan", v["zoom"], width_hint=360 if side_attention else 460),
                       key="imaging.original")
    if side_attention:
        try:
            att = ui.cached_attention(key, frame, model_name, x, pred)
            col_c[0].plotly_chart(ui.map_view(v["display"], att.attributions, False, "absolute", v["opacity"],
                                            v["cmap"], "Attention map (where the head pooled from)", v["zoom"],
                                            width_hint=360), key="imaging.attention")
            col_c[0].caption(f"The head's weight on each cell of its {att.params['grid']} feature grid (the same for "
                             f"every class: where the model pooled from, not which way it pushed). Top cell "
                             f"{att.diagnostics['max_weight']:.0%} of the total; uniform would be "
                             f"{att.diagnostics['uniform_weight']:.1%} each.")
        except MedAIError as err:
            col_c[0].caption(f"No attention map: {err}")
    with col_b:
        explanation_view(v)
    rep = None
    if exp_done is not None:
        st.subheader("Can I trust this heatmap?")

        def show_maps(rep) -> None:  # noqa: ANN001 - a TrustReport
            m1, m2 = st.columns(2)
            for col, (name, amap) in zip((m1, m2), (("trained model", rep.cascade.trained),
                                                    ("fully randomised model", rep.cascade.randomised))):
                col.plotly_chart(ui.map_view(v["display"], amap, meta["signed"], v["sign"], v["opacity"],
                                           v["cmap"], f"{meta['label']}: {name}", v["zoom"], width_hint=360),
                                 key=f"imaging.sanity.{name}")

        one = est or ui.estimate(model_name, spec.modality, x, method, params)
        rep = ui.trust_panel(job_key, lambda progress: W.trust_image(model, spec, x, method, target, exp_done, progress,
                                                                     **params),
                             show_maps, "" if one is None else W.sanity_check_estimate(model, one.seconds, meta["label"]),
                             audit_as={"workspace": "imaging", "model": model_name, "sha": sha, "params": exp_params})
    shown.clear()
    shown.update({k: v[k] for k in ("window", "use_voi_lut", "opacity", "cmap", "sign")},
                 sanity=rep.summary() if rep is not None else None)


viewer()

st.subheader("How sure is the model?")
ui.reliability_panel(model_name, pred.positive_probability, key="imaging.rel",
                     caption="The page's prediction always uses the validated threshold.")

st.subheader("Take it away")
burned = W.scan_burned_in_risk(scan)
checked = False
if burned:
    checked = st.checkbox("I have checked the image: it shows no burned-in patient text", key=f"imaging.burned.{key}",
                          help=burned)
    if not checked:
        st.caption(f":material/visibility_off: {burned} Until you tick the box, the report leaves the scan out and the "
                   "de-identified DICOM export is off.")
files = {"Heatmap values (CSV)": (f"{method}_attributions.csv", "text/csv", lambda: W.image_attributions_csv(exp_done))} if exp_done else {}
if scan.source.startswith("DICOM") and (checked or not burned):
    files["De-identified DICOM"] = ("deidentified.dcm", "application/dicom",
                                    lambda: W.deidentify_dicom(data, allow_burned_in=checked).data)
ui.take_away("imaging.take", lambda: W.image_report(scan, spec, pred, exp_done, frame=frame, window=shown["window"],
                                                  use_voi_lut=shown["use_voi_lut"], mode=shown["sign"],
                                                  opacity=shown["opacity"], cmap=shown["cmap"], file_name=file_name,
                                                  allow_burned_in=checked, sanity=shown["sanity"]),
             files, "medai_imaging", audit_as={"workspace": "imaging", "model": model_name, "sha": sha})
if scan.source.startswith("DICOM"):
    st.caption("De-identified DICOM: DICOM PS3.15 Annex E basic confidentiality profile (identifying attributes removed "
               "or replaced, UIDs remapped, private tags removed); pixel data unchanged.")

with st.expander("Metadata (patient identifiers hidden)"):
    reveal = st.checkbox("Reveal patient identifiers", key=K_REVEAL,
                         help="Names, IDs, dates, UIDs, institutions and private tags are hidden by default "
                              "(DICOM PS3.15 basic profile).")
    if reveal:
        st.warning("Identifiers are visible. Do not screenshot or share this view.")
    st.dataframe(W.metadata_rows(scan, reveal), hide_index=True, width="stretch")
