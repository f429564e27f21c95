"""Figures of a training run: live loss and accuracy curves, the confusion matrix, the reliability diagram."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medai_core.plots.trust import reliability_figure as _reliability
from medai_core.workspaces.training.evaluate import Evaluation

COLOURS = {"train": "#1f77b4", "val": "#ff7f0e"}


def curves_figure(history: Sequence[dict[str, float]], epochs: int, best_epoch: int | None = None) -> go.Figure:
    """Loss and accuracy per epoch, training (augmented views, dropout on) and validation."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss (cross-entropy)", "Accuracy"))
    x = [h["epoch"] for h in history]
    for col, metric in ((1, "loss"), (2, "acc")):
        for split, name in (("train", "training"), ("val", "validation")):
            fig.add_trace(go.Scatter(x=x, y=[h[f"{split}_{metric}"] for h in history], mode="lines+markers",
                                     name=name, legendgroup=split, showlegend=col == 1,
                                     line={"color": COLOURS[split]}), row=1, col=col)
        if best_epoch:
            fig.add_vline(x=best_epoch, line_dash="dot", line_color="grey", row=1, col=col)
    fig.update_xaxes(title_text="epoch", range=[0.5, max(epochs, 1) + 0.5])
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h", "y": -0.3})
    return fig


def confusion_figure(ev: Evaluation) -> go.Figure:
    """Counts of the test split, rows the true class, columns the predicted class."""
    labels = list(ev.labels)
    fig = go.Figure(go.Heatmap(z=ev.confusion, x=labels, y=labels, colorscale="Blues", showscale=False,
                               text=ev.confusion, texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_xaxes(title_text="predicted", side="bottom")
    fig.update_yaxes(title_text="true", autorange="reversed")
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title="Confusion matrix (test split)")
    return fig


def reliability_figure(ev: Evaluation) -> go.Figure:
    """Observed share of the positive label against P(positive label), test split."""
    return _reliability(ev.reliability, threshold=0.5, title=f"Reliability of P({ev.positive_label}), test split")
