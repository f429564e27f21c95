"""Shared models under concurrent sessions: explanations and predictions run from several threads at
once give exactly what they give one at a time, in every workspace (imaging: test_explain.py)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from medai_core.workspaces.notes import pipeline as N
from medai_core.workspaces.records import pipeline as R
from medai_core.workspaces.vitals import pipeline as V
from medai_core.io.records import load_records
from medai_core.io.vitals import to_series
from medai_core.models import get_spec, load_model
from medai_core.models.forecaster import ICU_SERIES
from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES
from medai_core.workspaces.vitals.samples import synthetic_icu_case
from medai_core.workspaces.records.samples import synthetic_records


def _run_both_ways(jobs):
    """Each job returns an array; run sequentially, then 4 threads at once with the order shuffled."""
    sequential = [job() for job in jobs]
    order = np.random.default_rng(0).permutation(len(jobs))
    with ThreadPoolExecutor(4) as ex:
        futures = {int(i): ex.submit(jobs[i]) for i in order}
        concurrent = [futures[i].result() for i in range(len(jobs))]
    return sequential, concurrent


def test_records_explain_and_score_concurrently():
    spec, model = get_spec("support_ftt"), load_model("support_ftt")
    table = load_records(synthetic_records(6))
    jobs = []
    for row in range(6):
        for method in ("shapley_sampling", "integrated_gradients"):
            jobs.append(lambda r=row, m=method: R.explain_record(model, spec, table, r, m).attributions)
        jobs.append(lambda: R.score(model, spec, table).risk)
    seq, conc = _run_both_ways(jobs)
    for a, b in zip(seq, conc):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_notes_explain_and_classify_concurrently():
    spec, model = get_spec("notes_tfm"), load_model("notes_tfm")
    vocab = N.load_vocab(spec)
    texts = list(SYNTHETIC_NOTES.values())[:3]
    jobs = []
    for t in texts:
        target = N.classify(model, spec, vocab, t).label
        jobs.append(lambda t=t, g=target: N.explain_note(model, spec, vocab, t, g, n_steps=8).values)
        jobs.append(lambda t=t: np.array(list(N.classify(model, spec, vocab, t).probabilities.values())))
    seq, conc = _run_both_ways(jobs)
    for a, b in zip(seq, conc):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_vitals_explain_and_forecast_concurrently(method):
    spec, model = get_spec("icu_gru"), load_model("icu_gru")
    cases = [to_series(synthetic_icu_case(kind, seed=s), ICU_SERIES) for kind, s in
             (("stable", 1), ("deteriorating", 2), ("stable", 3))]
    jobs = []
    for s in cases:
        for sig in ("HR", "MAP"):
            jobs.append(lambda s=s, g=sig: V.explain_forecast(model, spec, s, g, 3, method).attributions)
        jobs.append(lambda s=s: V.forecast(model, spec, s).quantiles)
    seq, conc = _run_both_ways(jobs)
    for a, b in zip(seq, conc):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
