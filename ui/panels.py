"""The panels every workspace page shares: held-out reliability with an adjustable threshold, the sanity check
of a map, the take-away downloads and "what we changed in your data". Each heavy one runs as a Streamlit
fragment, so moving its own widgets reruns only the panel (issue 18)."""
from __future__ import annotations

import json
import time
from typing import Any, Callable

import streamlit as st

from medai_core.errors import Cancelled, MedAIError
from ui.core import audit, cached_heldout, digest, forget_job, show_error, submit_job
from ui.memo import figure

def _rate_metric(col: Any, label: str, v: float | None, ci: tuple[float, float] | None) -> None:
    col.metric(label, "n/a" if v is None else f"{v:.0%}", f"95% CI {ci[0]:.0%}-{ci[1]:.0%}" if ci else None,
               delta_color="off", delta_arrow="off")


def reliability_panel(name: str, current: float | None, *, key: str, view: str | None = None,
                      caption: str = "") -> None:
    """"How sure": the model's reliability diagram on its held-out split with this case on it, and an
    adjustable operating threshold with the sensitivity, specificity, PPV and NPV it gives on that split.

    Args:
        name: a registered model with a shipped held-out file.
        current: this case's probability (classifiers) or alarm score (forecasters), or None.
        view: for multi-class models a class label (one-vs-rest) or None (top-1 confidence); for
            forecasters the alarm key.

    The panel is a fragment: moving its threshold (or ticking "new crossings only") reruns the panel alone.
    The held-out views are computed once per process (``_held_view``: shipped data only, never a user's), the
    figures once per session and arguments (``ui.memo.figure``).
    """
    try:
        cached_heldout(name)
    except MedAIError as err:
        st.warning(f"No held-out reliability for {name}: {err}")
        return
    _reliability_fragment(name, current, key, view, caption)


def warm_reliability(name: str) -> None:
    """Build what ``reliability_panel`` keeps per process for ``name`` at its default view and threshold (the server's
    warm-up calls this: the first scans after a restart each built them while holding the others up; issue 18)."""
    held = cached_heldout(name)
    view = alarms_by_frequency(held)[0] if held.kind == "forecaster" else None
    _threshold_figure(name, view, False, _default_threshold(_held_view(name, view, False)[0])[0])
    if held.kind == "forecaster" and held.coverage:
        _coverage_figure(name)


def alarms_by_frequency(held: Any) -> list[str]:  # noqa: ANN401 - a HeldOut
    """A forecaster's alarm keys, the most frequent on its held-out split first (the page's default is the first)."""
    return [a.key for a in sorted(held.alarms, key=lambda a: -int(a.outcomes.sum()))]


def _default_threshold(v: Any) -> tuple[float, int]:  # noqa: ANN401 - a reliability view
    """The threshold slider's default and its decimals: a rare-event alarm (sepsis: about 0.02) needs 0.001 steps."""
    digits = 3 if v.default_threshold < 0.1 else 2
    return float(round(v.default_threshold, digits)), digits


@st.cache_resource(show_spinner=False, max_entries=64)
def _held_view(name: str, view: str | None, new_only: bool):  # noqa: ANN202
    """A model's held-out reliability view, curve and threshold sweep (``trust.heldout`` / ``trust.calibration``),
    once per process: they depend on the shipped held-out file only."""
    from medai_core.trust.calibration import reliability_curve, threshold_sweep
    from medai_core.trust.heldout import reliability_view

    v = reliability_view(cached_heldout(name), view, new_only)
    return v, reliability_curve(v.probs, v.outcomes), threshold_sweep(v.probs, v.outcomes)


@st.fragment
def _reliability_fragment(name: str, current: float | None, key: str, view: str | None, caption: str) -> None:
    from medai_core.trust.calibration import operating_point

    held = cached_heldout(name)
    new_only = False
    if held.kind == "forecaster":
        n_start = int((held.alarm(view) if view else held.alarms[0]).at_start.sum())
        new_only = bool(n_start) and st.checkbox(
            f"New crossings only (leave out the {n_start} held-out windows already past the limit when the forecast "
            "starts)", key=f"{key}.{view}.new")
    v = _held_view(name, view, new_only)[0]
    default, digits = _default_threshold(v)
    fine = digits == 3
    thr = st.slider("Operating threshold", 0.0, 1.0, default, 10.0 ** -digits,
                    key=f"{key}.{name}.{view}.thr", format=f"%.{digits}f",
                    help=f"Default {v.default_threshold:.{digits}f}: {v.threshold_source}. "
                         "Moving it changes only the rates below, not the model's decision.")
    op = operating_point(v.probs, v.outcomes, thr)
    c = st.columns(5)
    _rate_metric(c[0], "Sensitivity", op.sensitivity, op.sensitivity_ci)
    _rate_metric(c[1], "Specificity", op.specificity, op.specificity_ci)
    _rate_metric(c[2], "PPV", op.ppv, op.ppv_ci)
    _rate_metric(c[3], "NPV", op.npv, op.npv_ci)
    c[4].metric("Flagged", f"{op.flagged} of {op.n}")
    rel = figure(_reliability_figure, name, view, new_only, thr, None if current is None else round(current, 4))
    sweep = _threshold_figure(name, view, new_only, thr)
    f1, f2 = st.columns(2)
    f1.plotly_chart(rel, key=f"{key}.rel")
    f2.plotly_chart(sweep, key=f"{key}.sweep")
    where = "" if current is None else (f" This case: **{current:.{1 if fine else 0}%}**, " + ("at or above" if current >= thr else "below")
                                        + " the threshold.")
    st.caption(f"{v.what}. 95% Wilson intervals.{where} {caption} {held.meta.get('note', '') if held.meta.get('set_aside_rows') is not None else ''}")
    if held.kind == "forecaster" and held.coverage:
        st.plotly_chart(_coverage_figure(name), key=f"{key}.cov")


def _reliability_figure(name: str, view: str | None, new_only: bool, thr: float, current: float | None):  # noqa: ANN202
    """The reliability diagram with this case and the threshold on it (built per session: ``ui.memo.figure``)."""
    from medai_core.plots.trust import reliability_figure

    v, curve, _ = _held_view(name, view, new_only)
    return reliability_figure(curve, current, thr, f"Reliability on the held-out {cached_heldout(name).split} split "
                              f"(n = {curve.n}, ECE {curve.ece:.3f})", v.x_title, v.y_title)


@st.cache_resource(show_spinner=False, max_entries=256)
def _threshold_figure(name: str, view: str | None, new_only: bool, thr: float):  # noqa: ANN202
    """Rates against threshold on the shipped held-out split: no user data in it, so built once per process and
    served to every session (Streamlit copies a figure to send it; nothing mutates it)."""
    from medai_core.plots.trust import threshold_figure

    return threshold_figure(_held_view(name, view, new_only)[2], thr, "Rates vs threshold (held-out split)")


@st.cache_resource(show_spinner=False, max_entries=16)
def _coverage_figure(name: str):  # noqa: ANN202
    """A forecaster's quantile coverage on its shipped held-out split (no user data): once per process."""
    from medai_core.plots.trust import coverage_figure

    return coverage_figure(cached_heldout(name).coverage, "Are the 10/50/90% quantiles honest? (held-out split)")


def take_away(key: str, report: Callable[[], Any], files: dict[str, tuple[str, str, Callable[[], bytes]]],
              stem: str, audit_as: dict | None = None) -> None:
    """"Take it away": the case report (PDF, or ZIP with every figure as PNG and the CSVs) and CSV downloads.

    Everything is built only when its button is clicked (Streamlit runs the callable then, in memory), so
    reruns stay fast. Patient identifiers are left out of the report unless the user ticks the box.

    Args:
        report: builds the workspace's ``CaseReport``.
        files: label -> (file name, MIME type, builder) for the other downloads (CSV, DICOM).
        stem: file-name stem for the report.
        audit_as: ``audit``'s workspace, model and sha: each download clicked is recorded ("report" or "export").
    """
    from medai_core.report.pdf import build_pdf
    from medai_core.report.bundle import report_zip

    include = st.checkbox("Include patient identifiers in the report", key=f"{key}.ids", value=False,
                          help="Off by default: names, IDs, dates, file names and free text are left out.")
    if include:
        st.warning("The report will contain patient identifiers. Share it only where that is allowed.",
                   icon=":material/warning:")
    csvs = {name: build for name, mime, build in files.values() if mime == "text/csv"}
    cols = st.columns(2 + len(files))

    def clicked(action: str, what: str, ids: bool | None = None) -> None:  # runs before the rerun the click starts
        audit(action, **(audit_as or {}), params={"what": what, "identifiers": ids}, once=False)

    on = {"on_click": clicked if audit_as else "ignore"}
    cols[0].download_button("Case report (PDF)", lambda: build_pdf(report(), include), f"{stem}_report.pdf",
                            "application/pdf", key=f"{key}.pdf", args=("report", "pdf", include), **on,
                            icon=":material/picture_as_pdf:")
    cols[1].download_button("Report + figures + CSV (ZIP)",
                            lambda: report_zip(report(), include, {n: b() for n, b in csvs.items()}),
                            f"{stem}_report.zip", "application/zip", key=f"{key}.zip", args=("report", "zip", include),
                            **on, icon=":material/folder_zip:")
    for col, (label, (name, mime, build)) in zip(cols[2:], files.items()):
        col.download_button(label, build, name, mime, key=f"{key}.{name}", args=("export", label), **on,
                            icon=":material/download:")


def trust_panel(key: str, run: Callable[[Callable[[float], None]], Any], show_maps: Callable[[Any], None],
                estimate: str = "", audit_as: dict | None = None) -> Any:
    """"Can I trust this heatmap?": on request, the cascading-randomisation sanity check and the deletion /
    insertion curves of the map on screen, computed in the background with progress and a cancel button.

    Args:
        key: identifies the shown map (input, model, method, target, parameters).
        run: ``run(progress) -> trust.TrustReport``.
        show_maps: draws the trained and the fully randomised model's maps side by side.
        estimate: the expected time, shown before the user starts it.
        audit_as: ``audit``'s workspace, model, sha and params: the finished check is recorded once, its JSON on download.
    Returns the TrustReport once computed (None before).
    """
    from medai_core.trust.randomisation import RANDOMISATION_FAIL, RANDOMISATION_PASS
    from medai_core.plots.trust import cascade_figure, faithfulness_figure

    job_key = f"sanity|{key}"
    wkey = f"ui.sanity.{digest(key.encode())}"  # widget keys stay short and plain

    def cancel() -> None:
        forget_job(job_key)
        st.session_state[wkey] = False

    if not st.toggle("Sanity check of this map", key=wkey,
                     help="Re-runs the same explainer with the model's layers randomised one by one from the output "
                          "(Adebayo et al. 2018), and deletes / inserts the most-attributed parts of the input."):
        if estimate:
            st.caption(estimate)
        return None
    job = submit_job(job_key, "Sanity check", run, wait_s=0.5)
    polling = not job.done

    @st.fragment(run_every=None if job.done else 0.5)
    def progress_view() -> None:
        if not job.done:
            st.progress(job.progress, text=f"Sanity check… {job.progress:.0%}, {time.perf_counter() - job.started:.1f} s"
                                           + (f" ({estimate})" if estimate else ""))
            st.button("Cancel", key=f"{wkey}.cancel", icon=":material/cancel:", on_click=cancel)
            return
        if polling:
            st.rerun()

    progress_view()
    if not job.done:
        return None
    try:
        rep = job.future.result()
    except Cancelled:
        return None
    except Exception as err:  # noqa: BLE001 - shown as a message, never a traceback
        show_error(err)
        return None
    c, f = rep.cascade, rep.faithfulness
    if audit_as:
        audit("sanity_check", **audit_as, summary={"randomisation": c.verdict, "faithfulness": f.verdict})
    box = {"passes": st.success, "weak": st.warning}.get(c.verdict, st.error)
    box(f"**Randomisation check: {c.verdict}** (Spearman {c.rank_correlation:+.2f}, of magnitudes "
        f"{c.abs_rank_correlation:+.2f}). {c.message}", icon=":material/fact_check:")
    fbox = {"faithful": st.success, "partly faithful": st.warning}.get(f.verdict, st.error)
    fbox(f"**Faithfulness: {f.verdict}.** {f.message}", icon=":material/show_chart:")
    show_maps(rep)
    a, b = st.columns(2)
    a.plotly_chart(cascade_figure(c.stages, RANDOMISATION_PASS, RANDOMISATION_FAIL, "Cascading randomisation"),
                   key=f"{wkey}.cascade")
    b.plotly_chart(faithfulness_figure(f, f"Deleting / inserting {f.unit}"),
                   key=f"{wkey}.faith")
    st.caption(f"Removed parts take the reference: {f.reference}. "
               f"Sanity check in {c.seconds:.1f} s, curves in {f.seconds:.1f} s; randomised models are copies (the "
               "shared model is never touched) and are cached. Pass |Spearman| <= "
               f"{RANDOMISATION_PASS}, fail > {RANDOMISATION_FAIL}.")
    st.download_button("Sanity check (JSON)", lambda: json.dumps(rep.to_json(), indent=1), "sanity_check.json",
                       "application/json", key=f"{wkey}.json", icon=":material/download:",
                       on_click=(lambda: audit("export", **{**audit_as, "params": {"what": "sanity check"}}, once=False))
                       if audit_as else "ignore")
    return rep


def changes_panel(changes: Any, key: str, what: str = "value") -> None:
    """"What we changed in your data": every cell set to missing, reading dropped or row not scored
    (``medai_core.io.changes.DataChange``), with a summary per field. Shown on every workspace page;
    says so plainly when nothing was changed. Never collapsed away silently: the title carries the count."""
    from medai_core.io.changes import changes_table, summarise

    changes = list(changes)
    title = (f"What we changed in your data: {len(changes)} {what}{'s' if len(changes) != 1 else ''} set aside"
             if changes else "What we changed in your data: nothing")
    with st.expander(title, expanded=bool(changes), icon=":material/rule:"):
        if not changes:
            st.caption("Every value was used as it was uploaded.")
            return
        st.markdown("\n".join(f"- {line}" for line in summarise(changes)))
        header, rows = changes_table(changes)
        import pandas as pd

        frame = pd.DataFrame(list(rows), columns=list(header))
        frame = frame.loc[:, [c for c in frame.columns if c in ("value", "reason") or frame[c].astype(bool).any()]]
        st.dataframe(frame, hide_index=True, width="stretch", key=f"{key}.changes")  # no all-empty row/time column
        st.caption("Set-aside values are treated as missing (records) or left out (readings); the rest is scored. "
                   "The case report lists the same changes.")
