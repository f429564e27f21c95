"""Can I trust this? Generic checks that any modality's model and attribution map can be put through.

- ``randomisation``: cascading model randomisation (Adebayo et al. 2018), the sanity check of a map.
- ``faithfulness``: deletion and insertion curves of a map against random orders.
- ``checks``: both checks of one map with one progress bar (``TrustReport``).
- ``calibration``: reliability curves, operating points and threshold sweeps on a held-out split.
- ``alarms``: quantile coverage and clinical alarms of forecasters.
- ``heldout``: a model's shipped held-out results (``assets/<model>.heldout.json``) and their views.

Modality glue (how to perturb a scan, a record, a note or a series) lives in each workspace's
``trust.py``; nothing here imports a workspace. The names below load their module on first use
(PEP 562), so the torch-free reliability modules stay torch-free when imported through this package.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrustReport": "checks", "split_progress": "checks",
    "FaithfulnessCurves": "faithfulness", "faithfulness_curves": "faithfulness", "faithfulness_verdict": "faithfulness",
    "RANDOMISATION_FAIL": "randomisation", "RANDOMISATION_PASS": "randomisation", "CascadeResult": "randomisation",
    "cascading_randomisation": "randomisation", "layer_groups": "randomisation",
    "randomisation_verdict": "randomisation", "randomised_layers": "randomisation",
    "ReliabilityCurve": "calibration", "OperatingPoint": "calibration", "ThresholdSweep": "calibration",
    "reliability_curve": "calibration", "operating_point": "calibration", "threshold_sweep": "calibration",
    "wilson_interval": "calibration",
    "Alarm": "alarms", "Coverage": "alarms", "alarm_probability": "alarms", "quantile_coverage": "alarms",
    "HeldOut": "heldout", "HeldOutError": "heldout", "load_heldout": "heldout", "reliability_view": "heldout",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'medai_core.trust' has no attribute {name!r}")
    return getattr(importlib.import_module(f"medai_core.trust.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__
