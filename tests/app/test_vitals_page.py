"""AppTest of the Vital-signs page: demo case, upload, bad upload, explanation controls."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from medai_core.workspaces.vitals.samples import synthetic_icu_case
from tests.conftest import ROOT, open_page, run_sanity_toggle

APP = str(ROOT / "app.py")


def _vitals() -> AppTest:
    return open_page("vitals", 180)


def test_upload_shows_forecast_attention_and_attributions():
    at = _vitals()
    data = synthetic_icu_case("deteriorating").to_csv(index=False).encode()
    at.file_uploader(key="vitals.upload").upload("stay.csv", data, "text/csv")
    at.run()
    assert not at.exception and not at.error
    # forecast panels with attention row, attribution heatmap; held-out alarm reliability, sweep, coverage
    assert {c.key for c in at.get("plotly_chart")} == {"vitals.chart", "vitals.attr", "vitals.rel.rel",
                                                       "vitals.rel.sweep", "vitals.rel.cov"}
    assert any("Integrated Gradients (past values) in" in c.value for c in at.caption)
    at.selectbox(key="vitals.sig").set_value("MAP").run()
    at.radio(key="vitals.method").set_value("occlusion").run()
    at.slider(key="vitals.horizon").set_value(3).run()
    assert not at.exception and not at.error


def test_demo_cases_are_labelled_synthetic_and_warn_on_thresholds():
    at = _vitals()
    at.radio(key="vitals.source").set_value("Synthetic demo case").run()
    assert any("Synthetic" in c.value for c in at.caption)
    at.selectbox(key="vitals.demo.icu_gru").set_value("Deteriorating patient (synthetic)").run()
    assert not at.exception and not at.error
    assert any("interval" in w.value or "median forecast" in w.value for w in at.warning)


def test_second_forecaster_uses_the_same_page():
    at = _vitals()
    at.selectbox(key="vitals.model").set_value("cgm_gru").run()
    at.radio(key="vitals.source").set_value("Synthetic demo case").run()
    assert not at.exception and not at.error
    at.selectbox(key="vitals.demo.cgm_gru").set_value("Falling towards a low (synthetic)").run()
    assert not at.exception and not at.error
    assert any("Glucose" in s.label for s in at.selectbox if s.key == "vitals.sig") or at.selectbox(key="vitals.sig").value == "Glucose"


def test_bad_series_upload_gets_message():
    at = _vitals()
    at.file_uploader(key="vitals.upload").upload("bad.csv", b"timestamp,HR\n2024-01-01 09:00,80\n2024-01-01 08:00,81\n",
                                                 "text/csv")
    at.run()
    assert not at.exception
    assert any("go backwards" in e.value for e in at.error)


def test_sanity_check_of_the_forecast_map():
    at = _vitals()
    data = synthetic_icu_case("deteriorating").to_csv(index=False).encode()
    at.file_uploader(key="vitals.upload").upload("stay.csv", data, "text/csv")
    at.run()
    boxes = run_sanity_toggle(at)
    assert not at.exception
    assert any(v in " ".join(boxes) for v in ("passes", "weak", "fails"))
    assert "vitals.sanity.maps" in {c.key for c in at.get("plotly_chart")}


def test_upload_with_an_artefact_lists_it_and_still_forecasts():
    at = _vitals()
    df = synthetic_icu_case("stable").astype(object)
    df.loc[df.index[df["parameter"] == "HR"][10], "value"] = "0"  # a heart rate of 0: an artefact, set aside
    at.file_uploader(key="vitals.upload").upload("stay.csv", df.to_csv(index=False).encode(), "text/csv")
    at.run()
    assert not at.exception and not at.error
    panel = [e for e in at.expander if e.label.startswith("What we changed in your data")]
    assert [e.label for e in panel] == ["What we changed in your data: 1 reading set aside"]
    assert any("HR: 1 reading dropped (outside the plausible range 1-300 /min)" in m.value for m in panel[0].markdown)
    assert "vitals.chart" in {c.key for c in at.get("plotly_chart")}  # the forecast goes on


def test_clean_upload_says_nothing_was_changed():
    at = _vitals()
    at.file_uploader(key="vitals.upload").upload("stay.csv", synthetic_icu_case("stable").to_csv(index=False).encode(),
                                                 "text/csv")
    at.run()
    assert not at.exception
    assert any(e.label == "What we changed in your data: nothing" for e in at.expander)


def _sepsis() -> AppTest:
    at = _vitals()
    at.radio(key="vitals.task").set_value("Sepsis early warning").run()
    assert not at.exception
    return at


def test_sepsis_section_scores_an_upload_and_explains_an_hour():
    from medai_core.workspaces.vitals.samples import synthetic_sepsis_record

    at = _sepsis()
    assert any("not a diagnosis" in i.value for i in at.info)
    at.file_uploader(key="sepsis.upload").upload("p1.psv", synthetic_sepsis_record("deteriorating"), "text/plain")
    at.run()
    assert not at.exception and not at.error
    assert {c.key for c in at.get("plotly_chart")} == {"sepsis.risk", "sepsis.att", "sepsis.attr", "sepsis.op",
                                                       "sepsis.rel.rel", "sepsis.rel.sweep"}
    assert any(m.label == "Septic patients warned" for m in at.metric)
    assert any(m.label == "First alarm" and m.value.startswith("hour") for m in at.metric)
    at.radio(key="sepsis.method").set_value("occlusion").run()
    at.select_slider(key="sepsis.hour").set_value(5).run()
    assert not at.exception and not at.error
    assert any(m.label == "Risk at hour 6" for m in at.metric)


def test_sepsis_demo_and_bad_upload():
    at = _sepsis()
    at.radio(key="sepsis.source").set_value("Synthetic demo record").run()
    assert not at.exception and not at.error
    assert any("Synthetic" in c.value for c in at.caption)
    at.radio(key="sepsis.source").set_value("Upload a .psv record").run()
    at.file_uploader(key="sepsis.upload").upload("bad.psv", b"\x00\x01\x02 not a record", "text/plain")
    at.run()
    assert not at.exception and at.error


def test_pooled_forecaster_on_a_physionet_2019_record():
    """icu_pool_gru on the same page: a .psv upload gets the forecast, attention, attributions, the held-out alarm
    reliability and the interval coverage, and the sanity-check explainer choices."""
    from medai_core.workspaces.vitals.samples import synthetic_sepsis_record

    at = _vitals()
    at.selectbox(key="vitals.model").set_value("icu_pool_gru").run()
    at.file_uploader(key="vitals.upload").upload("p1.psv", synthetic_sepsis_record("deteriorating"), "text/plain")
    at.run()
    assert not at.exception and not at.error
    assert {c.key for c in at.get("plotly_chart")} == {"vitals.chart", "vitals.attr", "vitals.rel.rel",
                                                       "vitals.rel.sweep", "vitals.rel.cov"}
    assert any("SepsisLabel" in i.value for i in at.info)  # read as the outcome, never an input
    at.radio(key="vitals.method").set_value("occlusion").run()
    assert not at.exception and not at.error


def test_sanity_check_of_the_sepsis_map():
    from medai_core.workspaces.vitals.samples import synthetic_sepsis_record

    at = _sepsis()
    at.file_uploader(key="sepsis.upload").upload("p1.psv", synthetic_sepsis_record("deteriorating"), "text/plain")
    at.run()
    boxes = run_sanity_toggle(at)
    assert not at.exception
    assert any(v in " ".join(boxes) for v in ("passes", "weak", "fails"))
    assert "sepsis.sanity.maps" in {c.key for c in at.get("plotly_chart")}


def test_warm_up_builds_the_reliability_figures_the_page_asks_for_first(monkeypatch):
    """``ui.warm_reliability`` (the server's warm-up) builds the threshold figure under the same arguments as the
    page's first panel: the default alarm and the default threshold, so the first users find it built."""
    import ui.panels as panels

    calls: list[tuple] = []
    real = panels._threshold_figure
    monkeypatch.setattr(panels, "_threshold_figure", lambda *a: calls.append(a) or real(*a))
    at = _vitals()
    data = synthetic_icu_case("deteriorating").to_csv(index=False).encode()
    at.file_uploader(key="vitals.upload").upload("stay.csv", data, "text/csv")
    at.run()
    assert not at.exception and calls
    name = calls[0][0]
    page_first, calls[:] = calls[0], []
    panels.warm_reliability(name)
    assert calls == [page_first]
