"""Vital-signs workspace: everything the Vital-signs page and the ``vitals`` CLI need, in one import.

The sepsis early warning (``sepsis``: ``load_record`` -> ``score_record`` -> ``explain_hour`` ->
``trust_sepsis``) scores PhysioNet 2019 records hour by hour.

A series goes ``load_series`` -> ``forecast`` (quantiles and attention) -> ``explain_forecast``
(step x signal attributions), with ``threshold_warnings`` and ``alarm_score`` for the reliability
panel, then ``trust_forecast``, ``series_report`` and the CSVs. Figures come from ``medai_core.plots``.
"""
from __future__ import annotations

from medai_core.explain import EXPLAINERS, explainer_for
from medai_core.io.vitals import SeriesError, Signal, VitalSeries, load_series
from medai_core.plots.series import attribution_heatmap, forecast_figure
from medai_core.plots.trust import maps_side_by_side
from medai_core.workspaces.vitals.exports import series_attention_csv, series_attributions_csv, series_forecast_csv
from medai_core.workspaces.vitals.pipeline import (Forecast, alarm_score, explain_forecast, forecast, forecast_target,
                                                   locf, model_inputs, threshold_warnings, window_arrays,
                                                   window_minutes)
from medai_core.workspaces.vitals import sepsis
from medai_core.workspaces.vitals.report import series_report
from medai_core.workspaces.vitals.samples import (SYNTHETIC_SERIES, synthetic_cgm_case, synthetic_icu_case,
                                                  synthetic_series_csv)
from medai_core.workspaces.vitals.trust import faithfulness_forecast, sanity_check_forecast, trust_forecast

MODALITY = "series"

__all__ = ["EXPLAINERS", "MODALITY", "SYNTHETIC_SERIES", "Forecast", "SeriesError", "Signal", "VitalSeries",
           "alarm_score", "attribution_heatmap", "explain_forecast", "explainer_for", "faithfulness_forecast",
           "forecast", "forecast_figure", "forecast_target", "load_series", "locf", "maps_side_by_side",
           "model_inputs", "sanity_check_forecast", "sepsis", "series_attention_csv", "series_attributions_csv",
           "series_forecast_csv", "series_report", "synthetic_cgm_case", "synthetic_icu_case",
           "synthetic_series_csv", "threshold_warnings", "trust_forecast", "window_arrays", "window_minutes"]
