"""Records workspace (structured records): everything the page's records tab and the ``records`` CLI need.

A table goes ``load_records`` / ``record_from_form`` -> ``score`` (risk per patient) ->
``explain_record`` / ``attention`` (one patient) and ``global_importance`` (the batch), then
``trust_record``, ``record_report`` and the CSVs. Figures come from ``medai_core.plots``.
"""
from __future__ import annotations

from medai_core.explain import EXPLAINERS, explainer_for
from medai_core.io.records import (FEATURES, FIELDS, SCHEMA, RecordTable, SchemaError, load_records, record_from_form,
                                   schema_table)
from medai_core.plots.charts import attention_bar, attention_heatmap, attribution_figure, importance_figure, risk_figure
from medai_core.plots.trust import maps_side_by_side
from medai_core.workspaces.records.exports import record_attention_csv, record_attributions_csv
from medai_core.workspaces.records.pipeline import (RiskTable, attention, attention_matrix, attribution_frame,
                                                    explain_record, global_importance, quality_flags, reference_record,
                                                    reference_values, row_warnings, score, write_back)
from medai_core.workspaces.records.report import record_report
from medai_core.workspaces.records.samples import synthetic_records
from medai_core.workspaces.records.trust import faithfulness_record, sanity_check_record, trust_record

MODALITY = "tabular"

__all__ = ["EXPLAINERS", "FEATURES", "FIELDS", "MODALITY", "SCHEMA", "RecordTable", "RiskTable", "SchemaError",
           "attention", "attention_bar", "attention_heatmap", "attention_matrix", "attribution_figure",
           "attribution_frame", "explain_record", "explainer_for", "faithfulness_record", "global_importance",
           "importance_figure", "load_records", "maps_side_by_side", "quality_flags", "record_attention_csv",
           "record_attributions_csv", "record_from_form", "record_report", "reference_record", "reference_values",
           "risk_figure", "row_warnings", "sanity_check_record", "schema_table", "score", "synthetic_records", "trust_record",
           "write_back"]
