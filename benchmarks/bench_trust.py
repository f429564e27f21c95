"""Trust checks: time of the cascading randomisation check (cold: building the randomised copies; warm:
copies cached) and of deletion + insertion curves (20 fractions, 5 random orders), per modality on the
shipped models, with the verdicts for one demo input each.

Run: ``python benchmarks/bench_trust.py [--repeats 3] [--threads N]``. Medians after one warm-up run
(this machine is 2 noisy shared cores: the load average is printed). Not a test.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import median_ms  # noqa: E402

from medai_core.models import get_spec, load_model  # noqa: E402
from medai_core.trust.randomisation import CascadeResult, _ENTRIES  # noqa: E402
from medai_core.trust.faithfulness import FaithfulnessCurves  # noqa: E402
from medai_core.workspaces.vitals.trust import faithfulness_forecast, sanity_check_forecast  # noqa: E402
from medai_core.workspaces.imaging.trust import faithfulness_image, sanity_check_image  # noqa: E402
from medai_core.workspaces.notes.trust import faithfulness_note, sanity_check_note  # noqa: E402
from medai_core.workspaces.records.trust import faithfulness_record, sanity_check_record  # noqa: E402

NOTE = "Cataract in the left eye; phacoemulsification with intraocular lens placement, no complications."


def _cases() -> list[tuple[str, object, Callable[[], CascadeResult], Callable[[], FaithfulnessCurves]]]:
    """(label, model, cascade(), faithfulness()) per modality x explainer, with the explainer's defaults."""
    from medai_core.workspaces.notes import pipeline as N
    from medai_core.workspaces.records import pipeline as R
    from medai_core.workspaces.vitals import pipeline as V
    from medai_core.workspaces.imaging.pipeline import explain, predict, prepare_input
    from medai_core.io import load_scan
    from medai_core.io.records import load_records
    from medai_core.io.vitals import load_series
    from medai_core.workspaces.imaging.samples import sample_path
    from medai_core.workspaces.records.samples import synthetic_records
    from medai_core.workspaces.vitals.samples import synthetic_series_csv

    cases = []
    spec, model = get_spec("busi_cnn"), load_model("busi_cnn")
    x = prepare_input(load_scan(sample_path("Ultrasound, RGB (US1)")), spec)
    target = predict(model, spec, x).label
    for method in ("gradcam", "integrated_gradients"):
        exp = explain(model, spec, x, method, target)
        cases.append((f"image busi_cnn US1 DICOM, {method} ({target})", model,
                      lambda m=method, e=exp: sanity_check_image(model, spec, x, m, target, **e.params),
                      lambda e=exp: faithfulness_image(model, spec, x, target, e.attributions,
                                                         baseline=e.params.get("baseline", "mean"))))
    rspec, rmodel = get_spec("support_ftt"), load_model("support_ftt")
    table = load_records(synthetic_records(4))
    for method in ("shapley_sampling", "integrated_gradients"):
        exp = R.explain_record(rmodel, rspec, table, 0, method)
        cases.append((f"tabular support_ftt synthetic row 0, {method}", rmodel,
                      lambda m=method: sanity_check_record(rmodel, rspec, table, 0, m),
                      lambda e=exp: faithfulness_record(rmodel, rspec, table, 0, e.attributions)))
    nspec, nmodel = get_spec("notes_tfm"), load_model("notes_tfm")
    vocab = N.load_vocab(nspec)
    label = N.classify(nmodel, nspec, vocab, NOTE).label
    ta = N.explain_note(nmodel, nspec, vocab, NOTE, label)
    cases.append((f"text notes_tfm synthetic sentence, integrated_gradients ({label})", nmodel,
                  lambda: sanity_check_note(nmodel, nspec, vocab, NOTE, label),
                  lambda: faithfulness_note(nmodel, nspec, vocab, NOTE, label, ta.values)))
    for name, case, signal, step in (("icu_gru", "Deteriorating patient (synthetic)", "MAP", 1),
                                     ("cgm_gru", "After a meal (synthetic)", "Glucose", 6)):
        sspec, smodel = get_spec(name), load_model(name)
        series = load_series(synthetic_series_csv(name, case), sspec.extra["series"])
        for method in ("integrated_gradients", "occlusion"):
            exp = V.explain_forecast(smodel, sspec, series, signal, step, method)
            cases.append((f"series {name} '{case}', {signal} +{step}, {method}", smodel,
                          lambda s=series, sp=sspec, mo=smodel, sg=signal, st=step, m=method:
                              sanity_check_forecast(mo, sp, s, sg, st, m),
                          lambda s=series, sp=sspec, mo=smodel, sg=signal, st=step, e=exp:
                              faithfulness_forecast(mo, sp, s, sg, st, e.attributions)))
    return cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# trust checks on CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, median of "
          f"{args.repeats} after 1 warm-up; load average {os.getloadavg()[0]:.1f}\n")
    print("| case | cascade cold ms | cascade warm ms | deletion+insertion ms | randomisation | faithfulness |")
    print("|---|---|---|---|---|---|")
    details = []
    for label, model, cascade, faith in _cases():
        def cold(model=model, cascade=cascade):  # noqa: ANN001, ANN202
            _ENTRIES.pop(model, None)  # a fresh cache: copies built again
            return cascade()

        cold_ms, _ = median_ms(cold, args.repeats, warmup=1)
        warm_ms, _ = median_ms(cascade, args.repeats, warmup=1)
        faith_ms, _ = median_ms(faith, args.repeats, warmup=1)
        c, f = cascade(), faith()
        print(f"| {label} | {cold_ms:.0f} | {warm_ms:.0f} | {faith_ms:.0f} | {c.verdict}: rho {c.rank_correlation:+.2f}, "
              f"abs {c.abs_rank_correlation:+.2f} ({len(c.stages)} stages) | {f.verdict}: deletion {f.deletion_auc:.3g} "
              f"vs {f.deletion_auc_random:.3g}±{f.deletion_auc_random_std:.2g}, insertion {f.insertion_auc:.3g} vs "
              f"{f.insertion_auc_random:.3g}±{f.insertion_auc_random_std:.2g} |", flush=True)
        details.append(f"- {label}: " + ", ".join(f"{s.group} {s.rank_correlation:+.2f}/{s.abs_rank_correlation:+.2f}"
                                                  for s in c.stages))
    print("\nRank correlation with the trained map after each stage (signed/absolute), output layer first:")
    print("\n".join(details))


if __name__ == "__main__":
    main()
