"""Records workspace: structured day-3 records (mortality risk) and clinical notes (specialty), explained."""
import numpy as np
import pandas as pd
import streamlit as st

import ui
from medai_core.errors import MedAIError
from medai_core.models import get_spec
from medai_core.workspaces import notes as N
from medai_core.workspaces import records as R

K_TAB_MODEL, K_REC_SOURCE, K_REC_UPLOAD, K_REC_ROW = "records.model", "records.source", "records.upload", "records.row"
K_NOTE_MODEL, K_NOTE_SOURCE, K_NOTE_UPLOAD, K_NOTE_TEXT = "notes.model", "notes.source", "notes.upload", "notes.text"

ui.route_via_app()
st.title("Records")
st.caption(ui.INTENDED_USE)
tab_rec, tab_note = st.tabs(["Structured record: in-hospital mortality", "Clinical note: specialty"])


def _field_input(f, default):  # noqa: ANN001, ANN202 - a schema Field and its pre-filled value
    rng = f" · normal {f.normal[0]:g}-{f.normal[1]:g}" if f.normal and f.normal[1] > f.normal[0] else ""
    label = f"{f.label}{' (' + f.unit + ')' if f.unit else ''}"
    accepted = (f" Accepted: {f.plausible_text()}; a value outside is impossible or mistyped and is refused here."
                if f.kind == "numeric" and f.plausible else "")
    helptext = f"`{f.name}`{rng}.{accepted} {f.help} Leave blank if unknown (the model has a learned 'missing' value)."
    if f.kind == "categorical":
        opts = [None, *f.categories]
        return st.selectbox(label, opts, index=opts.index(default), format_func=lambda v: "missing" if v is None else v,
                            key=f"records.form.{f.name}", help=helptext)
    if f.kind == "binary":
        return st.selectbox(label, [None, 0, 1], index=1, key=f"records.form.{f.name}", help=helptext,
                            format_func=lambda v: {None: "missing", 0: "no", 1: "yes"}[v])
    whole = f.name in ("num.co", "aps", "hrt", "resp", "meanbp")
    # min/max make the widget refuse an impossible value (the browser will not commit it); the range is in the help
    return st.number_input(label + rng, min_value=float(f.plausible[0]), max_value=float(f.plausible[1]),
                           value=None if default is None else round(float(default), 2), placeholder="missing",
                           step=1.0 if whole else None, format="%.0f" if whole else None,
                           key=f"records.form.{f.name}", help=helptext)


def structured_tab() -> None:
    name = ui.model_picker("tabular", K_TAB_MODEL)
    try:
        spec, model = get_spec(name), ui.cached_model(name)
    except MedAIError as err:
        ui.show_error(err)
        return
    source = st.radio("Records from", ["Form: one patient", "Upload a CSV", "Synthetic demo batch"], horizontal=True,
                      key=K_REC_SOURCE)
    with st.expander("Published schema for uploads (columns, units, allowed and normal ranges)"):
        st.dataframe(R.schema_table(), hide_index=True, width="stretch")
        st.caption("Blank cells mean 'missing' and are allowed. Optional columns may be left out. An optional "
                   "`id` column names each patient (must be unique). Other columns are ignored.")
    try:
        if source == "Form: one patient":
            ref = R.reference_values(model)
            with st.form("records.form"):
                st.caption("Pre-filled with the training cohort's typical patient (medians, most common categories); "
                           "clear a value to mark it missing.")
                cols = st.columns(4)
                values = {}
                for i, f in enumerate(R.SCHEMA):
                    with cols[i % 4]:
                        values[f.name] = _field_input(f, ref[f.name] if f.required else None)
                st.form_submit_button("Score this patient", type="primary")
            table = R.record_from_form(values)
        elif source == "Upload a CSV":
            up = st.file_uploader("Records CSV (one row per patient)", type=["csv"], key=K_REC_UPLOAD)
            if up is None:
                st.info("Upload a CSV following the schema above. It stays in memory and is never saved.")
                return
            table = R.load_records(up.getvalue())
        else:
            st.caption("**Synthetic**: made-up records from a seeded generator (`medai_core.workspaces.records.samples`); "
                       "no real patient.")
            table = R.load_records(R.synthetic_records())
    except R.SchemaError as err:
        st.error("**The table does not follow the records schema.**\n\n" + "\n".join(f"- {p}" for p in err.problems),
                 icon=":material/error:")
        return
    except MedAIError as err:
        ui.show_error(err)
        return
    for notice in table.notices:
        st.info(notice, icon=":material/info:")
    ui.changes_panel(table.changes, key="records.quality", what="value")
    scores, score_ms = ui.timed(R.score, model, spec, table)
    flags = R.quality_flags(table)
    table_sha = ui.digest(pd.util.hash_pandas_object(table.frame, index=True).values.tobytes(), full=True)
    one = {"label": scores.labels[0], "risk": round(float(scores.risk[0]), 4)} if len(table) == 1 and scores.scored[0] else {}
    ui.audit("predict", "records", name, sha=table_sha, params={"source": source},
             summary={"n_records": len(table), "n_scored": int(scores.scored.sum()), **one,
                      "n_above_threshold": int(((scores.risk >= scores.threshold) & scores.scored).sum())})
    if len(table) > 1:
        st.subheader(f"Risk for {len(table)} patients")
        if not scores.scored.all():
            st.warning(f"{int((~scores.scored).sum())} of {len(table)} patients were not scored; the 'data quality' "
                       "column says why.", icon=":material/block:")
        st.dataframe(scores.frame().assign(**{"data quality": flags}).style.format({"risk": "{:.1%}"}, na_rep="no risk"),
                     hide_index=True, width="stretch", key="records.table")
        st.download_button("Download results (CSV)", lambda: R.write_back(table, scores).to_csv(index=False),
                           "medai_records_risk.csv", "text/csv", icon=":material/download:",  # built on click
                           on_click=ui.audit, args=("export", "records", name),
                           kwargs={"sha": table_sha, "params": {"what": "results CSV"}, "once": False})
    first = int(np.argmax(scores.scored)) if scores.scored.any() else 0  # the first scored patient by default
    row = st.selectbox("Patient to explain", range(len(table)), index=first, key=K_REC_ROW,
                       format_func=lambda i: f"{table.ids[i]} ({scores.risk[i]:.0%}{', ⚠' if flags[i] else ''})"
                       if scores.scored[i] else f"{table.ids[i]} (not scored)") if len(table) > 1 else 0
    table_key = table_sha[:16]
    if not scores.scored[row]:
        st.metric(f"Patient {table.ids[row]}: risk of {spec.extra['risk_of']}", "no risk")
        st.warning(f"**Patient {table.ids[row]} was not scored**: {table.not_scored_reason(row)}. There is no risk, "
                   "explanation or report for this patient" + (": pick a scored one above." if scores.scored.any()
                                                                 else "."), icon=":material/block:")
    else:
        methods = sorted(R.EXPLAINERS.names(modalities=spec.modality), key=lambda n: n != "shapley_sampling")
        c1, c2 = st.columns([3, 2])
        method = c2.radio("Attribution method", methods, key="records.method", format_func=lambda n: R.explainer_for(n, "tabular")[1]["label"],
                          help="Shapley value sampling (default): swaps whole features, so missing and categorical values "
                               "are handled exactly and contributions add up to the risk difference. Integrated Gradients "
                               "interpolates the feature tokens: faster, approximate (convergence delta shown).")
        key = ("records.exp", table_key, name, row, method)
        if key not in st.session_state:
            with st.spinner("Computing attributions…"):
                st.session_state[key] = R.explain_record(model, spec, table, row, method)
        exp = st.session_state[key]
        ui.audit("explain", "records", name, sha=table_sha, params={"method": method, "row": int(row)})
        d = exp.diagnostics
        c1.metric(f"Patient {table.ids[row]}: risk of {spec.extra['risk_of']}", f"{scores.risk[row]:.1%}")
        if flags[row]:
            c1.warning(f"{flags[row]}: treated as missing for this patient (see 'What we changed in your data').",
                       icon=":material/rule:")
        c1.markdown(f"Label: **{scores.labels[row]}** (threshold {scores.threshold:.0%}, chosen on validation by Youden's J)  \n"
                    f":gray[scored {int(scores.scored.sum()):,} of {len(table):,} record(s) in {score_ms:.0f} ms]")
        c1.plotly_chart(ui.figure(R.risk_figure, scores.risk[row], scores.threshold, spec.extra["risk_of"], d["reference_risk"]), key="records.risk")
        with st.expander("How sure is the model? Reliability on the held-out split and the operating threshold", expanded=True):
            ui.reliability_panel(name, float(scores.risk[row]), key="records.rel",
                                 caption="The label above always uses the validated threshold.")
        st.plotly_chart(ui.figure(R.attribution_figure, R.attribution_frame(exp, table, row),
                                           f"Why {scores.risk[row]:.1%} rather than the reference patient's {d['reference_risk']:.1%}"),
                        key="records.attr")
        extra = (f"convergence delta {d['convergence_delta']:.2e} ({d['relative_delta']:.2%} of the difference)"
                 if "convergence_delta" in d else f"sum of contributions equals the risk difference to within {abs(d['sum_minus_difference']):.1e}")
        st.caption(f"{R.explainer_for(method, 'tabular')[1]['label']} in {exp.seconds * 1000:.0f} ms · {extra}. "
                   "The reference is the typical training patient (see the form's pre-filled values).")
        with st.expander("Can I trust these attributions? Sanity check and faithfulness", expanded=False):
            names = [f.label for f in R.SCHEMA]
            rep = ui.trust_panel(f"records|{key}", lambda progress: R.trust_record(model, spec, table, row, method, exp, progress),
                                 lambda r: st.plotly_chart(ui.figure(R.maps_side_by_side, r.cascade.trained, r.cascade.randomised, names,
                                                                             "Attributions: trained vs fully randomised model"),
                                                           key="records.sanity.maps"),
                                 audit_as={"workspace": "records", "model": name, "sha": table_sha,
                                           "params": {"method": method, "row": int(row)}})
        st.subheader("Attention map")
        att = R.attention(model, table, row)
        names = [f.label for f in R.SCHEMA]
        a1, a2 = st.columns(2)
        layer = a1.selectbox("Layer", range(att.shape[0]), format_func=lambda i: f"layer {i + 1}", index=att.shape[0] - 1, key="records.layer")
        head = a2.selectbox("Head", [-1, *range(att.shape[1])], format_func=lambda h: "mean of heads" if h < 0 else f"head {h + 1}", key="records.head")
        w = att[layer].mean(0) if head < 0 else att[layer, head]
        st.plotly_chart(ui.figure(R.attention_bar, w, names, f"CLS-to-feature attention, layer {layer + 1}, "
                                      f"{'mean of heads' if head < 0 else f'head {head + 1}'}"), key="records.attn")
        st.caption("Attention shows where the model looked, not whether a value raised or lowered the risk.")
        with st.expander("All layers and heads"):
            st.plotly_chart(ui.figure(R.attention_heatmap, att, names, "CLS-to-feature attention"), key="records.attn_all")
        st.subheader("Take it away")
        ui.take_away("records.take", lambda: R.record_report(table, row, spec, scores, exp, attention=att,
                                                           sanity=rep.summary() if rep else None),
                     {"Attributions (CSV)": (f"record_{method}_attributions.csv", "text/csv",
                                             lambda: R.record_attributions_csv(exp, values=table.frame.iloc[row].to_dict())),
                      "Attention (CSV)": ("record_attention.csv", "text/csv", lambda: R.record_attention_csv(att))},
                     "medai_record", audit_as={"workspace": "records", "model": name, "sha": table_sha})
    if len(table) > 1:
        st.subheader("Global importance for this batch")
        # lazy: attributing up to 200 records is a second or more of model work, done only when asked for
        box = st.expander("Mean |contribution| of each feature over the batch (Integrated Gradients; computed when "
                          "opened)", key="records.global.open", on_change="rerun")
        if box.open:
            with box:
                gkey = ("records.global", table_key, name)
                if gkey not in st.session_state:
                    with st.spinner("Attributing the batch…"):
                        st.session_state[gkey] = R.global_importance(model, spec, table)
                g = st.session_state[gkey]
                ui.audit("explain", "records", name, sha=table_sha, params={"scope": "batch", "method": "integrated_gradients"})
                st.plotly_chart(ui.figure(R.importance_figure, g, f"Mean |contribution| over {g.attrs['n_records']} "
                                          "records (Integrated Gradients on feature tokens)"), key="records.global")


def notes_tab() -> None:
    name = ui.model_picker("text", K_NOTE_MODEL)
    try:
        spec, model, vocab = get_spec(name), ui.cached_model(name), N.load_vocab(get_spec(name))
    except MedAIError as err:
        ui.show_error(err)
        return
    changes = ()  # pasted and demo notes are used as they are
    source = st.radio("Note from", ["Paste text", "Upload .txt / .csv", "Synthetic demo note"], horizontal=True, key=K_NOTE_SOURCE)
    try:
        if source == "Paste text":
            text = st.text_area("Clinical note", height=180, max_chars=N.MAX_NOTE_CHARS, key=K_NOTE_TEXT,
                                placeholder="Paste a transcription; it stays in memory and is never saved.")
            if not text.strip():
                st.info("Paste a note, upload a file, or pick a synthetic demo note.")
                return
            notes = [N.Note(N.check_text(text), "file", "pasted note")]
        elif source == "Upload .txt / .csv":
            up = st.file_uploader("A .txt note, or a .csv with a 'text' column (and optional 'id')", type=["txt", "csv"], key=K_NOTE_UPLOAD)
            if up is None:
                st.info("Upload a file. It stays in memory and is never saved.")
                return
            notes = N.load_notes(up.getvalue(), up.name)
            changes = notes.changes  # rows set aside (empty or unreadable), never their text
        else:
            pick = st.selectbox("Synthetic note (written for MedAI, not from MTSamples)", list(N.SYNTHETIC_NOTES), key="notes.demo")
            notes = [N.Note(N.SYNTHETIC_NOTES[pick], "file", pick)]
    except MedAIError as err:
        ui.show_error(err)
        return
    ui.changes_panel(changes, key="notes.quality", what="row")
    preds, classify_ms = ui.timed(lambda: [N.classify(model, spec, vocab, n.text) for n in notes])
    first = {"label": preds[0].label, "probability": round(float(preds[0].probabilities[preds[0].label]), 4)} if len(notes) == 1 else {}
    ui.audit("predict", "notes", name, sha=ui.digest("\x00".join(n.text for n in notes).encode(), full=True),
             params={"source": source}, summary={"n_notes": len(notes), **first})
    i = 0
    if len(notes) > 1:
        st.dataframe(pd.DataFrame({"note": [n.ref for n in notes], "specialty": [p.label for p in preds],
                                   "probability": [p.probabilities[p.label] for p in preds]}).style.format({"probability": "{:.1%}"}),
                     hide_index=True, width="stretch", key="notes.table")
        i = st.selectbox("Note to explain", range(len(notes)), format_func=lambda k: notes[k].ref, key="notes.pick")
    note, pred = notes[i], preds[i]
    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(ui.figure(N.class_probability_figure, pred.top(3), "Top 3 specialties (calibrated)"), key="notes.probs")
    win = spec.extra["max_tokens"]
    c2.markdown(f"**{pred.label}** · {pred.probabilities[pred.label]:.0%}  \n:gray[classified {len(notes)} note(s) in {classify_ms:.0f} ms]  \n"
                f"{pred.n_tokens:,} words"
                f"{f', {pred.unknown_share:.0%} not in the vocabulary' if pred.unknown_share >= 0.005 else ''}")
    if pred.n_windows > 1:
        c2.warning(f"Long note: read in {pred.n_windows} windows of up to {win} words; the prediction averages the "
                   "windows, so every word counts and nothing is cut off.", icon=":material/view_week:")
    else:
        c2.caption(f"Notes longer than {win} words are read in windows of {win} and averaged; this one fits one window.")
    target = c2.selectbox("Explain specialty", spec.labels, index=spec.labels.index(pred.label), key=f"notes.target.{i}")
    with st.expander("How sure is the model? Reliability on the held-out split and the operating threshold", expanded=True):
        view = st.radio("Reliability of", [None, pred.label], horizontal=True, key=f"notes.relview.{i}",
                        format_func=lambda v: "the top-1 specialty (is it right?)" if v is None else f"'{v}' vs the rest")
        ui.reliability_panel(name, pred.probabilities[pred.label], key="notes.rel", view=view)
    enc = N.encode_note(note.text, vocab, spec)
    note_sha = ui.digest(note.text.encode(), full=True)
    key = ("notes.exp", note_sha[:16], name, target)
    if key not in st.session_state:
        with st.spinner("Computing token attributions…"):
            st.session_state[key] = N.explain_note(model, spec, vocab, enc, target)
    ta = st.session_state[key]
    ui.audit("explain", "notes", name, sha=note_sha, params={"method": "integrated_gradients", "target": target})
    d = ta.explanation.diagnostics
    st.subheader(f"Which words argue for '{target}'")
    st.caption(f"Integrated Gradients on the word embeddings (baseline: words replaced by padding), "
               f"{ta.explanation.seconds * 1000:.0f} ms, convergence delta {d['relative_delta']:.2%} of the logit difference. "
               "Red: evidence for the specialty; green: against. Hover a word for its value.")
    st.markdown(N.highlight_html(ta.tokens, ta.values, signed=True), unsafe_allow_html=True)
    st.plotly_chart(ui.figure(N.word_bar, N.top_words(ta.tokens, ta.values), f"Words that moved '{target}' most"), key="notes.words")
    with st.expander("Can I trust these word attributions? Sanity check and faithfulness", expanded=False):
        words_read = [enc.tokens.text[a:b] for a, b in enc.tokens.spans]
        rep = ui.trust_panel(f"notes|{key}", lambda progress: N.trust_note(model, spec, vocab, enc, target, ta.values, progress),
                             lambda r: st.plotly_chart(ui.figure(N.maps_side_by_side, r.cascade.trained, r.cascade.randomised, words_read,
                                                                         "Word attributions: trained vs fully randomised model"),
                                                       key="notes.sanity.maps"),
                             audit_as={"workspace": "notes", "model": name, "sha": note_sha, "params": {"target": target}})
    st.subheader("Attention map")
    att = N.note_attention(model, enc)
    a1, a2 = st.columns(2)
    layer = a1.selectbox("Layer", range(att.shape[0]), format_func=lambda k: f"layer {k + 1}", index=0, key="notes.layer")
    head = a2.selectbox("Head", [-1, *range(att.shape[1])], format_func=lambda h: "mean of heads" if h < 0 else f"head {h + 1}", key="notes.head")
    w = att[layer].mean(0) if head < 0 else att[layer, head]
    st.caption(f"CLS-to-word attention (blue, shaded from this head's smallest to largest weight): where the classifier "
               f"token looked, not a direction of evidence. Largest weight = {N.attention_peakedness(w):.1f} x an even "
               "spread" + (" (this head spreads its attention almost evenly)." if N.attention_peakedness(w) < 2 else "."))
    st.markdown(N.highlight_html(enc.tokens, w, signed=False), unsafe_allow_html=True)
    words = [enc.tokens.text[a:b] for a, b in enc.tokens.spans]
    st.plotly_chart(ui.figure(N.attention_bar, np.asarray(w), [f"{wd} #{k + 1}" for k, wd in enumerate(words)],
                                  f"Most attended words, layer {layer + 1}", top=15), key="notes.attn")
    st.subheader("Take it away")
    ui.take_away("notes.take", lambda: N.note_report(note.text, spec, vocab, pred, ta, attention=att, ref=note.ref,
                                                   sanity=rep.summary() if rep else None, data_changes=changes),
                 {"Word attributions (CSV)": ("note_attributions.csv", "text/csv", lambda: N.note_attributions_csv(ta.tokens, ta.values)),
                  "Attention (CSV)": ("note_attention.csv", "text/csv", lambda: N.note_attention_csv(enc.tokens, att))},
                 "medai_note", audit_as={"workspace": "notes", "model": name, "sha": note_sha})
    st.caption("The note's text and its file name are identifiers: the report leaves them out unless included; the "
               "CSVs hold the words the model read, which are the explanation itself.")


with tab_rec:
    structured_tab()
with tab_note:
    notes_tab()
