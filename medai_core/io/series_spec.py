"""What a forecaster reads (signals, static fields, grid step): plain data, importable without pandas
(the model catalogue is torch- and pandas-free for a fast cold start)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Signal:
    """One signal a forecaster reads.

    Attributes:
        name: canonical name (CSV column / parameter).
        label, unit: for display.
        sources: parameter names accepted, in priority order (first available per step wins).
        plausible: values outside are artefacts: dropped, in training data and uploads alike
            (``medai_core.io.vitals.drop_artefacts``; an upload lists each as a ``DataChange``).
        normal: reference range shaded on charts.
        alarm: (low, high) clinical thresholds for forecast warnings (None = no warning).
    """

    name: str
    label: str
    unit: str
    sources: tuple[str, ...]
    plausible: tuple[float, float]
    normal: tuple[float, float] | None = None
    alarm: tuple[float | None, float | None] | None = None


@dataclass(frozen=True)
class SeriesSpec:
    """What a forecaster reads: its signals, static fields and grid step."""

    signals: tuple[Signal, ...]
    static: tuple[str, ...]
    step_minutes: int
    min_history_steps: int
    ignore: tuple[str, ...] = ()  # parameters in source files that are silently not used
