"""Figures. Interactive Plotly figures the pages render, and static PNGs (matplotlib) for reports.

- ``image``: a scan (or overlay) with zoom and pan; class-probability bars.
- ``charts``: risk gauge, attribution and attention bars, attention heatmaps, word bars.
- ``series``: a forecast with its intervals and attention; attributions over (step x signal).
- ``trust``: reliability diagram, threshold sweep, quantile coverage, cascade and faithfulness curves.
- ``static``: the PNG figures of case reports (no pyplot state, nothing written to disk).
- ``encode``: images as PNG bytes or data URIs (numpy and Pillow only: light enough for any page thread).

Figures take plain values (arrays, dataclasses); nothing here imports a workspace. Submodules are
imported on use (plotly and matplotlib take a while to load).
"""
