"""Train page: your own labelled images in, a pretrained backbone and a head trained in the background with live
curves, then test metrics and a model folder the Imaging page uses at once."""
import streamlit as st

import ui
from medai_core.errors import MedAIError
from medai_core.workspaces import training as T

K_SOURCE, K_ZIP, K_FOLDER, K_MANIFEST = "train.source", "train.zip", "train.folder", "train.manifest"
K_JOB, K_SAVED, K_START, K_SAVE = "train.job", "train.saved", "train.start", "train.save"

ui.route_via_app()
st.title("Train a model")
st.caption("Walk the whole pipeline on your own images: data in, a split that keeps each patient on one side, a "
           "pretrained backbone with a new head, an optimiser, live curves, then test metrics and calibration. "
           "For research and teaching, not for clinical use. Uploads stay in memory and are never saved or logged.")

with st.sidebar:
    st.subheader("Images")
    source = st.radio("Training set", ["Upload a ZIP", "A folder on this server"], key=K_SOURCE, horizontal=True)
    data, n_images = None, 0
    try:
        if source == "Upload a ZIP":
            up = st.file_uploader("ZIP with one folder per class (e.g. normal/, abnormal/)", type=["zip"], key=K_ZIP)
            data = up.getvalue() if up is not None else None
        else:
            folder = st.text_input("Folder (under the server's allowed training folders)", key=K_FOLDER)
            data = str(T.allowed_folder(folder)) if folder.strip() else None
        n_images = T.count_images(data) if data is not None else 0
    except MedAIError as err:
        ui.show_error(err)
        data = None
    man = st.file_uploader("Optional manifest CSV: path, group (patient)[, label]", type=["csv"], key=K_MANIFEST)

    st.subheader("Model")
    backbones = T.backbone_choices()
    name = st.text_input("Model name", "my_model", key="train.name")
    backbone = st.selectbox("Pretrained backbone", list(backbones), format_func=backbones.get, key="train.backbone")
    fine_tune = st.selectbox("Layers trained", list(T.FINE_TUNE), format_func=T.FINE_TUNE.get, key="train.fine_tune")
    optimizer = st.selectbox("Optimiser", list(T.OPTIMIZERS), index=2, format_func=T.OPTIMIZERS.get, key="train.optimizer")
    lr = st.number_input("Learning rate", 1e-6, 1.0, 1e-3, format="%.5f", key="train.lr")
    epochs = st.slider("Epochs", 1, 100, 30, key="train.epochs")
    batch = st.select_slider("Batch size", [8, 16, 32, 64, 128], 32, key="train.batch")
    augment = st.selectbox("Augmentation", list(T.AUGMENTS), index=1, format_func=T.AUGMENTS.get, key="train.augment")
    size = st.select_slider("Input size (pixels)", list(T.SIZES), 224, key="train.size")
    positive = st.text_input("Positive label (blank: the second class of two)", "", key="train.positive")
    use = st.text_area("Intended use (goes into the model card)", T.TrainSettings().intended_use, key="train.use")

try:
    settings = T.TrainSettings(name=name.strip(), backbone=backbone, optimizer=optimizer, lr=float(lr), epochs=epochs,
                               batch_size=batch, augment=augment, size=size, fine_tune=fine_tune,
                               positive_label=positive.strip(), intended_use=use.strip() or "unspecified").check()
except MedAIError as err:
    ui.show_error(err)
    st.stop()
if data is not None and n_images:
    plan = T.estimate_seconds(settings, n_images)
    st.info(f"{n_images:,} image files. Estimated time on this server: about {T.duration(sum(plan.values()))} "
            f"(features {T.duration(plan['features'])}, training {T.duration(plan['train'])}).",
            icon=":material/timer:")
# a callback, not the button's value: it survives the rerun that route_via_app may ask for
st.button("Start training", type="primary", disabled=data is None, icon=":material/model_training:",
          on_click=lambda: st.session_state.update({K_START: True}))
if st.session_state.pop(K_START, False) and data is not None:
    job = T.QUEUE.submit(data, settings, manifest=man.getvalue() if man is not None else None, n_images=n_images)
    st.session_state[K_JOB] = job.id
    st.session_state.pop(K_SAVED, None)
    ui.audit("train", "training", sha=ui.digest(data, full=True) if isinstance(data, bytes) else None, once=False,
             params={"backbone": backbone, "optimizer": optimizer, "epochs": epochs, "size": size, "images": n_images})

job_id = st.session_state.get(K_JOB)
if job_id is None:
    st.info("Choose a training set and settings in the sidebar, then start. Each class is one folder of images; a "
            "manifest with a group column keeps a patient's images on one side of the split.")
    st.stop()


@st.fragment(run_every=1.0)
def progress() -> None:
    status = T.QUEUE.status(job_id)
    if status is None:
        st.warning("This training job is no longer on the server (it restarted, or the job is over an hour old).")
        return
    if status.finished:
        if st.session_state.get("train.shown") != status.id:
            st.session_state["train.shown"] = status.id
            st.rerun(scope="app")  # draw the results once, outside this polling fragment
        return
    if status.state == "queued":
        st.info(f"Queued: {status.ahead} training job(s) ahead of this one (one runs at a time on this server).")
    else:
        left = f", about {T.duration(status.remaining_s)} left" if status.remaining_s is not None else ""
        frac = status.done / status.total if status.total else 0.0
        st.progress(min(frac, 1.0), text=f"{status.words}: {status.done:,} of {status.total:,} "
                                         f"({T.duration(status.elapsed_s)} so far{left})")
    if status.history:
        st.plotly_chart(T.curves_figure(status.history, settings.epochs), key="train.curves.live")
    if st.button("Cancel training", icon=":material/cancel:"):
        T.QUEUE.get(job_id).cancel()


status = T.QUEUE.status(job_id)
if status is None or not status.finished:
    progress()
    st.stop()
if status.state != "done":
    (st.warning if status.state == "cancelled" else st.error)(status.error)
    st.stop()

r = status.result
ev = r.evaluation
st.success(f"Trained in {T.duration(status.elapsed_s)}: {r.settings.name}, best epoch {r.best_epoch} of "
           f"{r.settings.epochs}.", icon=":material/check_circle:")
st.plotly_chart(T.curves_figure(r.history, r.settings.epochs, r.best_epoch), key="train.curves.final")
m = ev.summary()
cols = st.columns(5)
for col, (label, value) in zip(cols, [("Test images", f"{m['n']}"), ("Accuracy", f"{m['accuracy']:.3f}"),
                                      ("Balanced accuracy", f"{m['balanced_accuracy']:.3f}"),
                                      (f"AUROC, {r.positive_label}", f"{m['auroc']:.3f}"), ("ECE", f"{m['ece']:.3f}")]):
    col.metric(label, value)
left, right = st.columns(2)
left.plotly_chart(T.confusion_figure(ev), key="train.confusion")
right.plotly_chart(T.reliability_figure(ev), key="train.reliability")
st.dataframe(ev.per_class.round(3), hide_index=True)
st.caption(f"Split (train / validation / test): {r.split_counts}. Temperature {r.temperature:.2f} fitted on "
           f"validation. Times: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.seconds.items()))
if r.set_aside or r.notes:
    with st.expander(f"{len(r.set_aside)} file(s) set aside; notes"):
        for note in r.notes:
            st.write(note)
        st.dataframe([{"file": a.path, "reason": a.reason} for a in r.set_aside], hide_index=True)

st.subheader("Keep the model")
c1, c2 = st.columns(2)
home = T.models_home()
c1.button(f"Save to the model folder ({home})", type="primary", disabled=K_SAVED in st.session_state,
          on_click=lambda: st.session_state.update({K_SAVE: True}))
if st.session_state.pop(K_SAVE, False) and K_SAVED not in st.session_state:
    try:
        folder = T.save_folder(r.files, home / r.settings.name)
        st.session_state[K_SAVED] = T.register_trained(str(folder))
        ui.audit("export", "training", st.session_state[K_SAVED], params={"to": "model folder"}, summary=ev.summary())
    except MedAIError as err:
        ui.show_error(err)
zipped = st.session_state.setdefault(f"train.zip.{job_id}", T.zip_folder(r.files, r.settings.name))
c2.download_button("Download the model folder (ZIP)", zipped,
                   file_name=f"{r.settings.name}.zip", mime="application/zip")
if K_SAVED in st.session_state:
    st.success(f"Saved and registered: choose **{st.session_state[K_SAVED]}** on the Imaging page.")
    st.page_link("pages/imaging.py", label="Open the Imaging page", icon=":material/radiology:")
with st.expander("Model card (README.md in the folder)"):
    st.markdown(r.files["README.md"].decode())
