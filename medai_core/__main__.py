"""Command line: ``image predict|train|train-user|reference``, ``records predict|schema|train``, ``notes predict|train``, ``models``.

``records predict FILE.csv`` writes the input rows back as CSV on stdout with ``risk`` and ``label``
appended; schema problems go to stderr, exit status 2. ``notes predict FILE ...`` (.txt files, or a
.csv with a ``text`` and optional ``id`` column) prints one JSON object per note:
``{"id" or "file", "model", "label", "probabilities"}``; a note that cannot be read prints
``{"file" or "id", "error"}`` and the run goes on (exit status 1).

``image predict`` prints one JSON object per line per file:
``{"file", "model", "label", "probabilities", "ood", "ood_score"}``, or ``{"file", "error"}`` for a
file that cannot be read (the run goes on; the exit status is 1 if any file failed). Without ``--model`` the
model is chosen per scan by content (``workspaces.imaging.routing``): ``model`` names it and an added
``"route": {"reason", "candidates"}`` says why; ``--model NAME`` forces one (no ``route`` key). With
``--explain NAME --out DIR`` it also writes ``DIR/<file stem>.<NAME>.png`` (heatmap over the scan)
and adds an ``"explanation"`` object to the line. ``--sanity`` (needs ``--explain``; exit status 2
without it) also checks that heatmap (``medai_core.explain.trust``): cascading model randomisation and
deletion/insertion curves against random orders. It writes ``DIR/<file stem>.<NAME>.sanity.json`` (every
stage's rank correlations, both verdicts, the curves and their areas) and ``DIR/<file stem>.<NAME>.sanity.png``
(trained and randomised maps side by side, correlations per stage, the curves), and adds
``"sanity": {"verdict", "rank_correlation", "abs_rank_correlation", "faithfulness", "deletion_auc",
"deletion_auc_random", "insertion_auc", "insertion_auc_random", "json", "png"}`` to the line; the other
keys are unchanged.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence


def _iter_files(paths: Sequence[str]) -> Iterator[Path]:
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            yield from sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith("."))
        else:
            yield p


def _image_predict(args: argparse.Namespace) -> int:
    from PIL import Image

    from medai_core.batch.lines import image_line, image_map
    from medai_core.errors import MedAIError
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.imaging import EXPLAINERS, render

    if args.sanity and not args.explain:
        print("--sanity checks a heatmap: add --explain NAME --out DIR", file=sys.stderr)
        return 2
    models: dict[str, object] = {}

    def model_for(name: str):  # noqa: ANN202 - a torch module, loaded once
        if name not in models:
            models[name] = load_model(name)
        return models[name]

    if args.model_dir:  # a user model folder (models.user), checked and loaded before any work
        from medai_core.models.user import register_folder

        args.model = register_folder(args.model_dir, load=True)
    if args.model:
        get_spec(args.model)  # an unknown name fails before any work, with a suggestion
    if args.explain:
        EXPLAINERS.entry(args.explain)  # unknown names fail before any work, with a suggestion
        if not args.out:
            print("--explain needs --out DIR for the heatmap PNGs", file=sys.stderr)
            return 2
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    used: set[str] = set()
    for path in _iter_files(args.paths):
        try:
            line, case = image_line(path, args.model, model_for, args.frame, keep_grid=bool(args.explain))
            if args.explain:
                exp, _, png = image_map(case, args.explain, args.target)
                meta = EXPLAINERS.entry(args.explain).meta
                stem = path.stem
                name = f"{stem}.{args.explain}.png"
                i = 1
                while name in used:
                    i += 1
                    name = f"{stem}-{i}.{args.explain}.png"
                used.add(name)
                Image.fromarray(png).save(out_dir / name)
                line["explanation"] = {"method": args.explain, "target": exp.target, "png": str(out_dir / name),
                                       **{k: round(v, 6) for k, v in exp.diagnostics.items()}}
                if args.sanity:
                    line["sanity"] = _write_sanity(case.model, case.spec, case.x, exp, render(case.scan, case.frame),
                                                   meta["signed"], out_dir / name.removesuffix(".png"))
        except MedAIError as exc:
            failed += 1
            line = {"file": str(path), "error": str(exc)}
        print(json.dumps(line), flush=True)
    return 1 if failed else 0


def _write_sanity(model, spec, x, exp, display, signed: bool, stem: Path) -> dict[str, object]:  # noqa: ANN001
    """Both trust checks of the heatmap just written: ``<stem>.sanity.json`` and ``.sanity.png``."""
    from medai_core.plots.static import report_png
    from medai_core.trust import TrustReport
    from medai_core.workspaces.imaging import faithfulness_image, sanity_check_image

    cascade = sanity_check_image(model, spec, x, exp.method, exp.target, **exp.params)
    # deletion fills with IG's own reference when there is one (the map explains F(x) - F(reference)),
    # else the training-mean grey the Occlusion explainer uses
    faith = faithfulness_image(model, spec, x, exp.target, exp.attributions,
                               baseline=str(exp.params.get("baseline", "mean")))
    report = TrustReport(exp.method, exp.target, cascade, faith)
    js, png = Path(f"{stem}.sanity.json"), Path(f"{stem}.sanity.png")
    js.write_text(json.dumps(report.to_json(), indent=1))
    png.write_bytes(report_png(report, display, signed))
    return {**report.summary(), "json": str(js), "png": str(png)}


def _image_train(args: argparse.Namespace) -> int:
    from medai_core.train.busi import train_busi
    from medai_core.train.busi_card import finalize_card

    _set_threads(args)
    if args.model != "busi_cnn":
        from medai_core.models import get_spec
        from medai_core.train.effnet import RECIPES, train_effnet
        from medai_core.train.effnet_card import write_card
        from medai_core.train.effnet_md import limits_markdown

        if args.model not in RECIPES:
            print(f"image train knows busi_cnn, {', '.join(RECIPES)}; not {args.model!r}", file=sys.stderr)
            return 2
        res = train_effnet(args.model, Path(args.data), Path(args.out), epochs=args.epochs, seed=args.seed)
        write_card(res, get_spec(args.model), Path(args.out), limits_markdown(args.model))
        print(json.dumps({"out": args.out, "test": {k: res["test"][k] for k in
                                                     ("accuracy", "positive_auroc", "positive_accuracy")}}))
        return 0
    train_busi(Path(args.data), Path(args.out), epochs=args.epochs or 150, seed=args.seed)
    res = finalize_card(Path(args.out))
    print(json.dumps({"out": args.out, "test": {k: res["test"][k] for k in ("accuracy", "malignant_auroc")}}))
    return 0


def _records_predict(args: argparse.Namespace) -> int:
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.records import load_records, score, write_back

    spec = get_spec(args.model)
    if spec.modality != "tabular":
        raise UnknownModality(args.model, "tabular")
    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file)
    table = load_records(data)
    for notice in table.notices:
        print(f"note: {notice}", file=sys.stderr)
    scores = score(load_model(args.model), spec, table)
    out = write_back(table, scores)
    out.to_csv(sys.stdout, index=False, lineterminator="\n")
    from medai_core.io.changes import summarise

    # one line on stderr (stdout stays the CSV); each row's own changes are in its `warnings` column
    what = "; ".join(summarise(table.changes)) or "no value changed"
    print(f"changes: scored {int(scores.scored.sum()):,} of {len(table):,} rows; {what}"
          f"{' (see the warnings column)' if table.changes else ''}", file=sys.stderr)
    return 0


def _records_schema(_: argparse.Namespace) -> int:
    from medai_core.workspaces.records import schema_table

    schema_table().to_csv(sys.stdout, index=False, lineterminator="\n")
    return 0


def _records_train(args: argparse.Namespace) -> int:
    from medai_core.train.support import train_support

    _set_threads(args)
    r = train_support(Path(args.data), Path(args.out), epochs=args.epochs, seed=args.seed,
                      log=lambda m: print(m, file=sys.stderr))
    print(json.dumps({"out": args.out, "test": {k: r["test"][k] for k in ("auroc", "ece", "auprc")},
                      "baselines": {k: v["auroc"] for k, v in r["baselines"].items()}}))
    return 0


def _notes_predict(args: argparse.Namespace) -> int:
    from medai_core.batch.lines import note_lines
    from medai_core.errors import MedAIError
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.notes import load_vocab

    spec = get_spec(args.model)
    if spec.modality != "text":
        raise UnknownModality(args.model, "text")
    model, vocab = load_model(args.model), load_vocab(spec)
    failed = 0
    for path in _iter_files(args.paths):
        try:
            for line in note_lines(path, model, spec, vocab):
                line.pop("row", None)  # the batch output's; the CLI's lines are as they were
                failed += "error" in line
                print(json.dumps(line), flush=True)
        except MedAIError as exc:
            failed += 1
            print(json.dumps({"file": str(path), "error": str(exc)}), flush=True)
    return 1 if failed else 0


def _notes_train(args: argparse.Namespace) -> int:
    from medai_core.train.notes import train_notes

    _set_threads(args)
    r = train_notes(Path(args.data), Path(args.out), epochs=args.epochs, seed=args.seed,
                    log=lambda m: print(m, file=sys.stderr))
    print(json.dumps({"out": args.out, "test_macro_f1": r["test"]["macro_f1"],
                      "baseline_macro_f1": r["baseline"]["macro_f1"]}))
    return 0


def _vitals_forecast(args: argparse.Namespace) -> int:
    """One JSON line per series: ``{"file", "model", "forecast", "notices", "changes"}`` (``notices``: the
    series' notices and each ``DataChange.text()``; ``changes``: each ``DataChange.to_json()``), or
    ``{"file", "error"}`` for a series that cannot be used (the run goes on; exit status 1)."""
    from medai_core.batch.lines import forecast_line
    from medai_core.errors import MedAIError
    from medai_core.models import get_spec, load_model

    spec = get_spec(args.model)
    if spec.modality != "series":
        raise UnknownModality(args.model, "series")
    model = load_model(args.model)
    failed = 0
    for path in _iter_files(args.paths):
        try:
            line = forecast_line(path, model, spec, args.horizon)
        except MedAIError as exc:
            failed += 1
            line = {"file": str(path), "error": str(exc)}
        print(json.dumps(line), flush=True)
    return 1 if failed else 0


def _vitals_sepsis(args: argparse.Namespace) -> int:
    """One JSON line per record: ``{"file", "model", "risk", "alarm"}`` with one risk and one 0/1 alarm per input
    row (for a PhysioNet 2012 ``.txt`` stay: per hour of its hourly grid, and an ``"hours"`` list), plus
    ``"changes"`` (each value set aside) where there are any; or ``{"file", "error"}`` (exit status 1)."""
    from medai_core.batch.lines import read_sepsis, sepsis_lines
    from medai_core.errors import MedAIError
    from medai_core.models import get_spec, load_model

    spec = get_spec(args.model)
    if spec.modality != "sepsis":
        raise UnknownModality(args.model, "sepsis")
    model = load_model(args.model)
    failed = 0
    batch: list[tuple[Path, Any]] = []

    def flush() -> None:  # score the read records together (one padded pass), print in input order
        for line in sepsis_lines(model, spec, batch):
            print(json.dumps(line), flush=True)
        batch.clear()

    for path in _iter_files(args.paths):
        try:
            batch.append((path, read_sepsis(path, spec)))
            if len(batch) == 64:
                flush()
        except MedAIError as exc:
            flush()
            failed += 1
            print(json.dumps({"file": str(path), "error": str(exc)}), flush=True)
    flush()
    return 1 if failed else 0


def _vitals_train(args: argparse.Namespace) -> int:
    from medai_core.train.icu import train_icu, write_card

    _set_threads(args)
    if args.model == "sepsis_gru":
        from medai_core.train.sepsis import train_sepsis
        from medai_core.train.sepsis_card import write_card as write_sepsis_card

        extra = {"epochs": args.epochs} if args.epochs else {}
        r = train_sepsis(Path(args.data), Path(args.out), seed=args.seed, log=lambda m: print(m, file=sys.stderr), **extra)
        write_sepsis_card(Path(args.out), r)
        print(json.dumps({"out": args.out, "utility": r["test"]["utility"], "auroc": r["test"]["auroc"],
                          "auprc": r["test"]["auprc"]}))
        return 0
    if args.model == "icu_pool_gru":
        from medai_core.models.catalog import ICU_POOL_SPEC
        from medai_core.train.icu_pool import train_pool
        from medai_core.train.icu_pool_card import write_card as write_pool_card

        r = train_pool(Path(args.data), Path(args.out), ICU_POOL_SPEC, **({"epochs": args.epochs} if args.epochs else {}),
                       seed=args.seed, log=lambda m: print(m, file=sys.stderr))
        write_pool_card(Path(args.out), r, ICU_POOL_SPEC)
        print(json.dumps({"out": args.out, **{s: {k: r["test"][s].get(f"mean_ratio_{k}") for k in ("model", "ridge", "trees")}
                                               | {"coverage80": r["test"][s]["mean_coverage80"]} for s in r["data"]}}))
        return 0
    if args.model == "cgm_gru":
        from medai_core.train.cgm import train_cgm

        extra = {"epochs": args.epochs} if args.epochs else {}
        r = train_cgm(Path(args.data), Path(args.out), seed=args.seed, log=lambda m: print(m, file=sys.stderr), **extra)
        print(json.dumps({"out": args.out, "ratio_30": r["test"]["ratio_30"], "ratio_60": r["test"]["ratio_60"]}))
        return 0
    r = train_icu(Path(args.data), Path(args.out), **({"epochs": args.epochs} if args.epochs else {}), seed=args.seed,
                  log=lambda m: print(m, file=sys.stderr))
    write_card(Path(args.out), r)
    print(json.dumps({"out": args.out, "mean_ratio": r["test"]["mean_ratio"],
                      "ridge_ratio": r["test"].get("mean_ridge_ratio"), "coverage80": r["test"]["mean_coverage80"]}))
    return 0


class UnknownModality(Exception):
    def __init__(self, model: str, modality: str) -> None:
        super().__init__(f"Model {model!r} is not a {modality} model.")


def _models(_: argparse.Namespace) -> int:
    from medai_core.models import MODELS, get_spec

    for name in MODELS:
        s = get_spec(name)
        print(json.dumps({"name": name, "modality": s.modality, "labels": list(s.labels), "description": s.description}))
    return 0


def _add_train(sub, help_: str, data_help: str, epochs: int | None, func) -> argparse.ArgumentParser:  # noqa: ANN001
    """A ``train`` sub-command with the options every trainer shares."""
    from medai_core.models.spec import assets_dir
    from medai_core.train.busi import SEED  # one seed, 20261123, for every trainer

    tr = sub.add_parser("train", help=help_)
    tr.add_argument("--data", required=True, help=data_help)
    tr.add_argument("--out", default=str(assets_dir()), help="output folder (default: the shipped assets/)")
    tr.add_argument("--epochs", type=int, default=epochs,
                    help="default: the shipped configuration's" if epochs is None else None)
    tr.add_argument("--seed", type=int, default=SEED)
    tr.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    tr.set_defaults(func=func)
    return tr


def _set_threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medai_core", description="MedAI models from the command line.")
    sub = p.add_subparsers(dest="area", required=True)
    img = sub.add_parser("image", help="scans: predict, explain, train").add_subparsers(dest="cmd", required=True)
    pr = img.add_parser("predict", help="classify scans (files or folders), one JSON line per file")
    pr.add_argument("paths", nargs="+", metavar="PATH")
    pr.add_argument("--model", default=None,
                    help="force this image model (default: chosen per scan by content, see `models`)")
    pr.add_argument("--model-dir", metavar="DIR", help="use your own model: a folder with medai-model.json")
    pr.add_argument("--frame", type=int, default=0, help="frame of multi-frame scans (0-based; default 0)")
    pr.add_argument("--explain", metavar="NAME", help="also write heatmaps: gradcam, integrated_gradients, smoothgrad, occlusion")
    pr.add_argument("--target", help="class to explain (default: the predicted label)")
    pr.add_argument("--out", metavar="DIR", help="folder for heatmap PNGs")
    pr.add_argument("--sanity", action="store_true",
                    help="also check each heatmap (model randomisation, deletion/insertion): <stem>.<NAME>.sanity.json/.png")
    pr.set_defaults(func=_image_predict)
    itr = _add_train(img, "train an image model (busi_cnn, busi_effnet, cxr_pneumonia) and write weights + model card",
                     "busi_cnn/busi_effnet: folder with benign/ malignant/ normal/ PNGs; cxr_pneumonia: folder with "
                     "manifest.csv and the JPEGs", None, _image_train)
    itr.add_argument("--model", default="busi_cnn", help="which image model to train (default busi_cnn)")
    from medai_core.train.user_cli import add_parsers as add_user_training

    add_user_training(img)
    rec = sub.add_parser("records", help="structured records: predict, schema, train").add_subparsers(dest="cmd", required=True)
    rp = rec.add_parser("predict", help="score a CSV of records; writes the rows back with risk and label on stdout")
    rp.add_argument("file", metavar="FILE.csv", help="records CSV following the schema (- for stdin)")
    rp.add_argument("--model", default="support_ftt")
    rp.set_defaults(func=_records_predict)
    rs = rec.add_parser("schema", help="print the published records schema as CSV")
    rs.set_defaults(func=_records_schema)
    _add_train(rec, "train support_ftt on SUPPORT2 and write weights + model card", "path to support2.csv", 200,
               _records_train)
    nt = sub.add_parser("notes", help="clinical notes: predict, train").add_subparsers(dest="cmd", required=True)
    np_ = nt.add_parser("predict", help="classify notes (.txt files, .csv with a text column, or folders), one JSON line per note")
    np_.add_argument("paths", nargs="+", metavar="FILE")
    np_.add_argument("--model", default="notes_tfm")
    np_.set_defaults(func=_notes_predict)
    _add_train(nt, "train notes_tfm on MTSamples and write weights, vocabulary + model card", "path to mtsamples.csv.gz",
               30, _notes_train)
    vt = sub.add_parser("vitals", help="vital-sign series: forecast, sepsis, train").add_subparsers(dest="cmd", required=True)
    vf = vt.add_parser("forecast", help="forecast series (CSV long/wide, PhysioNet .txt, or folders), one JSON line per series")
    vf.add_argument("paths", nargs="+", metavar="FILE")
    vf.add_argument("--model", default="icu_gru")
    vf.add_argument("--horizon", type=int, default=None, help="steps ahead (default and maximum: the model's)")
    vf.set_defaults(func=_vitals_forecast)
    vs = vt.add_parser("sepsis", help="hourly sepsis risk of PhysioNet 2019 .psv records (or 2012 .txt stays, or "
                       "folders), one JSON line per record")
    vs.add_argument("paths", nargs="+", metavar="FILE")
    vs.add_argument("--model", default="sepsis_gru")
    vs.set_defaults(func=_vitals_sepsis)
    vtr = _add_train(vt, "train icu_gru (PhysioNet 2012 set-a folder), icu_pool_gru (2012 + 2019), cgm_gru (Hall CGM "
                     "csv) or sepsis_gru (PhysioNet 2019 folder)",
                     "folder of PhysioNet 2012 .txt stays; for icu_pool_gru the shared data folder holding "
                     "physionet2012/set-a and physionet2019/training_setB; the CGM csv for cgm_gru; the folder of "
                     "PhysioNet 2019 .psv records for sepsis_gru", None, _vitals_train)
    vtr.add_argument("--model", default="icu_gru", choices=["icu_gru", "icu_pool_gru", "cgm_gru", "sepsis_gru"])
    from medai_core.batch.cli import add_parser as add_batch

    add_batch(sub)
    mo = sub.add_parser("models", help="list registered models")
    mo.set_defaults(func=_models)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from medai_core.errors import MedAIError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (MedAIError, UnknownModality) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
