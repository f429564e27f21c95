"""Can I trust these attributions? The generic checks (``medai_core.trust``) run on the records pipeline."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from medai_core.explain.base import Explanation, ProgressFn
from medai_core.trust.checks import TrustReport, split_progress
from medai_core.trust.faithfulness import N_RANDOM, N_STEPS, FaithfulnessCurves, faithfulness_curves
from medai_core.trust.randomisation import CascadeResult, cascading_randomisation

if TYPE_CHECKING:
    from medai_core.models.spec import ModelSpec
    from medai_core.io.records import RecordTable


def sanity_check_record(model: nn.Module, spec: ModelSpec, table: RecordTable, row: int,
                        method: str = "shapley_sampling", *, seed: int = 0, progress: ProgressFn | None = None,
                        **params: Any) -> CascadeResult:
    """Cascading randomisation of ``records.explain_record(...)``; maps (features,)."""
    from medai_core.workspaces.records.pipeline import explain_record

    return cascading_randomisation(
        model, lambda m: explain_record(m, spec, table, row, method, copy_model=False, **params).attributions,
        seed=seed, progress=progress)


def faithfulness_record(model: nn.Module, spec: ModelSpec, table: RecordTable, row: int, attributions: np.ndarray, *,
                        n_steps: int = N_STEPS, n_random: int = N_RANDOM, seed: int = 0, order: str = "positive",
                        progress: ProgressFn | None = None) -> FaithfulnessCurves:
    """Deletion/insertion of whole features (value and missing flag), replaced by the reference patient's
    (``records.reference_record``, the explainers' reference). Score: calibrated risk."""
    from medai_core.errors import InputError
    from medai_core.models.support_ftt import encode_records
    from medai_core.workspaces.records.pipeline import reference_record

    if not 0 <= row < len(table):
        raise InputError(f"Row {row + 1} does not exist; the table has {len(table)} records.")
    x = encode_records(table.frame.iloc[[row]])[0]
    units = torch.arange(x.shape[0])[:, None]
    return faithfulness_curves(lambda b: model.predict_proba(b), x, reference_record(model)[0], units,
                               np.asarray(attributions), n_steps=n_steps, n_random=n_random, seed=seed, order=order,
                               batch_size=256, score=f"risk of {spec.extra.get('risk_of', spec.positive_label)}",
                               unit="features", reference_name="reference patient", progress=progress)


def trust_record(model: nn.Module, spec: ModelSpec, table: RecordTable, row: int, method: str, exp: Explanation,
                 progress: ProgressFn | None = None) -> TrustReport:
    """Sanity check and faithfulness curves of one record's feature attributions ``exp``."""
    p1, p2 = split_progress(progress)
    cascade = sanity_check_record(model, spec, table, row, method, progress=p1)
    curves = faithfulness_record(model, spec, table, row, exp.attributions, progress=p2)
    return TrustReport(method, spec.positive_label, cascade, curves)
