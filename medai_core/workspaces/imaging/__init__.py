"""Imaging workspace: everything the Imaging page and the ``image`` CLI need, in one import.

A scan goes ``load_scan`` -> ``prepare_input`` -> ``predict`` / ``explain`` (pipeline), then
``trust_image`` (sanity check and faithfulness of the map), ``image_report`` (case report),
``image_attributions_csv`` and ``deidentify_dicom`` (take-away files). Figures come from
``medai_core.plots``; demo scans from ``samples``.
"""
from __future__ import annotations

from medai_core.explain import COLORMAPS, EXPLAINERS, explainer_for, normalise_map, overlay
from medai_core.explain.image import IG_BASELINES
from medai_core.io import deidentify_dicom, load_scan, render
from medai_core.io.deid import scan_burned_in_risk
from medai_core.io.scan import VOI_LUT_PRESET, Scan, metadata_rows, window_presets
from medai_core.plots.image import Picture, display_side, image_figure, picture, probability_figure
from medai_core.workspaces.imaging.exports import image_attributions_csv
from medai_core.workspaces.imaging.pipeline import (ImagePrediction, attention_map, decide, decide_indices, explain, explainers_for,
                                                    model_view, positive_group, predict, predict_batch,
                                                    prepare_input)
from medai_core.workspaces.imaging.report import image_report
from medai_core.workspaces.imaging.routing import Route, describe, forced, kind, looks_like, route_scan, routed_models
from medai_core.workspaces.imaging.views import heat_picture, map_figure
from medai_core.workspaces.imaging.samples import SAMPLES, available_samples, reference_dicoms, sample_path
from medai_core.workspaces.imaging.trust import (faithfulness_image, sanity_check_estimate, sanity_check_image,
                                                 trust_image)

MODALITY = "image"

__all__ = ["COLORMAPS", "EXPLAINERS", "IG_BASELINES", "MODALITY", "SAMPLES", "VOI_LUT_PRESET", "ImagePrediction", "Route", "attention_map",
           "Picture", "Scan", "describe", "display_side", "explainers_for", "forced", "kind", "looks_like", "positive_group", "predict_batch", "route_scan", "routed_models",
           "available_samples", "decide", "decide_indices", "deidentify_dicom", "explain", "explainer_for",
           "faithfulness_image", "heat_picture", "image_attributions_csv", "image_figure", "image_report", "load_scan", "map_figure",
           "metadata_rows", "model_view", "normalise_map", "overlay", "picture", "predict", "prepare_input", "probability_figure",
           "reference_dicoms", "render", "sample_path", "sanity_check_estimate", "sanity_check_image",
           "scan_burned_in_risk", "trust_image", "window_presets"]
