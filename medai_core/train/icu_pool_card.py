"""The model card and the held-out file of the pooled ICU forecaster (``medai_core.train.icu_pool``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medai_core.models.spec import ModelSpec

BARS = {"2012": (0.85, 0.80), "2019": (0.87, 0.84)}  # (bar, aim) on the mean MAE / persistence


def _ci(v: list[float]) -> str:
    return f"{v[0]:.3f}-{v[1]:.3f}"


def _bar_line(s: str, r: dict[str, Any]) -> str:
    bar, aim = BARS[s]
    m, trees = r["mean_ratio_model"], r.get("mean_ratio_trees")
    met = "**met**" if m <= bar else "**not met**"
    beat = ""
    if trees is not None:
        lo, hi = r["model_minus_trees_ci95"]
        beat = (f"; it beats the trees ({trees:.3f}) by {trees - m:.3f} (95% CI of model minus trees {lo:+.3f} to {hi:+.3f})"
                if hi < 0 else
                f"; it does **not** beat the trees ({trees:.3f}; 95% CI of model minus trees {lo:+.3f} to {hi:+.3f})")
    cov = r["mean_coverage80"]
    return (f"- {s}: {m:.3f} against the bar <= {bar:.2f} (aim {aim:.2f}): {met}{beat}; 80% coverage {cov:.3f} "
            f"({'inside' if 0.75 <= cov <= 0.85 else 'outside'} 0.75-0.85).")


def _table(s: str, r: dict[str, Any], names: tuple[str, ...]) -> str:
    head = ("| signal | windows x hours | MAE persistence | MAE model | model / pers. | ridge / pers. | trees / pers. | "
            "80% coverage | mean 80% width |\n|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for n in names:
        g = r["signals"][n]
        rows.append(f"| {n} | {g['n']:,} | {g['mae_persistence']:.3f} | {g['mae_model']:.3f} | {g['ratio_model']:.3f} | "
                    f"{g.get('ratio_ridge', float('nan')):.3f} | {g.get('ratio_trees', float('nan')):.3f} | "
                    f"{g['coverage80']:.3f} | {g['mean_width80']:.2f} |")
    ci = lambda k: f" (95% CI {_ci(r[k + '_ci95'])})" if k + "_ci95" in r else ""  # noqa: E731
    rows.append(f"| **mean** | | | | **{r['mean_ratio_model']:.3f}**{ci('mean_ratio_model')} | "
                f"{r.get('mean_ratio_ridge', float('nan')):.3f}{ci('mean_ratio_ridge')} | "
                f"{r.get('mean_ratio_trees', float('nan')):.3f}{ci('mean_ratio_trees')} | {r['mean_coverage80']:.3f} | |")
    return head + "\n".join(rows)


def card_markdown(r: dict[str, Any], spec: ModelSpec) -> str:
    names = spec.labels
    signals = spec.extra["series"].signals
    d, tr = r["data"], r["training"]
    sig_rows = "\n".join(f"| {s.name} | {s.label} | {s.unit or '-'} | {' else '.join(s.sources)} | "
                         f"{s.plausible[0]:g}-{s.plausible[1]:g} | "
                         + " / ".join(f"{d[k]['observed_share'][s.name]:.0%}" for k in ("2012", "2019")) + " |"
                         for s in signals)
    data = "\n".join(f"- {k}: {d[k]['source']}. {d[k]['patients']:,} patients; split by patient (seed {tr['seed']}): "
                     f"train {d[k]['split']['train']:,}, validation {d[k]['split']['val']:,}, test {d[k]['split']['test']:,}; "
                     f"{d[k]['windows']['test']:,} test windows." for k in ("2012", "2019"))
    tables = "\n\n".join(f"### {s} test patients\n{_table(s, r['test'][s], names)}" for s in ("2012", "2019"))
    by_hour = "; ".join(f"{s} " + ", ".join(f"{np.mean([r['test'][s]['signals'][n]['ratio_by_hour'][h] for n in names]):.3f}"
                                             for h in range(spec.extra['horizon'])) for s in ("2012", "2019"))
    def rng_of(sigs: tuple[str, ...]) -> str:
        v = [r["test"][s]["signals"][n]["ratio_model"] for s in ("2012", "2019") for n in sigs]
        return f"{min(v):.3f}-{max(v):.3f}"

    loss_units = ("its persistence MAE on the training windows, the metric's own weighting"
                  if tr.get("loss_scale") == "persistence" else "its standard deviation")
    dev = r.get("development", [])
    dev_rows = "\n".join(f"| {x['run']} | {x['config']} | {x['val']['2012']:.3f} | {x['val']['2019']:.3f} | "
                         f"{x['test']['2012']:.3f} | {x['test']['2019']:.3f} |" for x in dev)
    dev_text = ("\n## Development\nEach row a full training run on the same split (validation chose; test shown for the "
                "record). Mean MAE / persistence. " + r.get("development_note", "")
                + "\n\n| run | configuration | val 2012 | val 2019 | test 2012 | test 2019 |\n"
                f"|---|---|---|---|---|---|\n{dev_rows}\n") if dev else ""
    return f"""# Model card: {spec.name}

**Hourly ICU vital signs for the next 6 hours, with 10/50/90% quantiles, for PhysioNet 2012 stays and PhysioNet
2019 records alike** (one model, both formats). A GRU encoder with temporal attention whose head also reads
engineered summaries of the window (recent means, slope, how often each signal was measured), trained from
scratch in this repository on CPU. Decision support and demonstration only; not a medical device.

## Why one model for both sources
The five targets (heart rate, mean and systolic pressure, respiratory rate, temperature) are recorded in both
challenges in the same units on the same hourly grid, and the loader (`medai_core.io.vitals.load_series`)
already reads both formats into that grid. One model trained on both sees five times the patients of
icu_gru, needs no source flag (an upload in another layout is forecast the same way) and is one entry in the
picker; it is evaluated on each source's own held-out patients, against baselines fitted on that source alone.

## Data
{data}

The 2012 split is icu_gru's (same seed, same test RecordIDs). Hourly grid as for uploads: hour t after ICU
admission (2012: the record's time; 2019: `ICULOS`), the mean of the hour, values outside the plausible range
set aside as artefacts, invasive pressure before non-invasive. `SepsisLabel` is never read.

| signal | meaning | unit | source (priority) | plausible | hours observed 2012 / 2019 |
|---|---|---|---|---|---|
{sig_rows}

Targets: the first five. Statics: age, sex, ICU type (2019: `Unit1` medical, `Unit2` surgical), hours since
admission (capped at {spec.extra.get('time_cap', 96)}).

## Task and evaluation
At a cut point e, the model reads up to 24 h before e and forecasts hours e..e+5. Metric: MAE of the median
over observed target hours divided by the MAE of persistence (the last observed value) on the same hours, per
signal, then the mean over the five signals. 2012: every e from 12 to 42 (as icu_gru). 2019: every e with at
least 12 h of the record before it and the whole 6 h horizon inside the stay. 95% intervals: 1,000 bootstrap
resamples of test patients.

Baselines on the same test windows, fitted on the same source's training patients: persistence; ridge per
(signal, hour ahead) on the signal's last value, recent means, slope and hours since the last reading;
gradient-boosted trees (scikit-learn `HistGradientBoostingRegressor`, absolute-error loss, one per signal with
the hour ahead as a feature, at most 300,000 training rows, early stopping) on those features of every signal
plus the statics, predicting the change from the last value.

## Test metrics
{chr(10).join(_bar_line(s, r['test'][s]) for s in ('2012', '2019'))}

{tables}

Where the gap to the bars is: heart rate ({rng_of(('HR',))}) and temperature ({rng_of(('Temp',))}) stay near 0.9
of persistence on both sources (hourly heart rate moves little and unpredictably; temperature is measured every
few hours), while the pressures and respiratory rate reach {rng_of(('MAP', 'SysABP', 'RespRate'))}.

Mean ratio by hour ahead (1-6): {by_hour}.

## Model
GRU (hidden {tr['hidden']}) over (value, measured mask, padding) per hour, temporal attention from the last state, statics,
the last values, hours since each signal's last reading and `window_features` into an MLP head; the median is the
last value plus a learned change, the 10% and 90% quantiles lie below and above it by learned positive widths.
Pinball loss with each signal in units of {loss_units} (median weighted {tr['median_weight']:g}x); AdamW (lr
{tr['lr']:g}, weight decay {tr['weight_decay']:g}, dropout {tr['dropout']:g}, batch {tr['batch_size']}), one-cycle schedule
over {tr['epochs']} epochs of {tr['train_windows']:,} training windows (both sources; 2019 cut points every
{tr.get('stride_2019', 1)} h), best validation epoch {tr['best_epoch']} kept. {tr['seconds'] / 60:.0f} min on
{tr['threads']} CPU thread(s).

## Calibration
Interval half-widths are scaled per signal on the validation windows of both sources so that 80% intervals
cover 80% there (factors {', '.join(f'{n} {w:.2f}' for n, w in zip(names, r['width_scale']))}); test coverage
above, per source.

## Explanations
Temporal attention over past hours, and Captum Integrated Gradients or occlusion over (hour x signal) for a
chosen signal and hour ahead, as for icu_gru.
{dev_text}
## Intended use and limits
- Demonstration of how a sequence model forecasts ICU vitals and what it looked at; not for alarms, triage or
  treatment decisions.
- Adult ICUs of US hospitals in the two challenges (2012: the first 48 h of the stay; 2019: whole stays);
  hourly means, not beat-to-beat values. Other hospitals, children and other sampling rates are untested.
- Respiratory rate is recorded mainly for patients not on a ventilator in 2012; temperature is sparse in both.
"""


def write_card(out_dir: Path, r: dict[str, Any], spec: ModelSpec) -> None:
    (Path(out_dir) / spec.card).write_text(card_markdown(r, spec))

