"""``python -m medai_core batch``: inputs, rows equal to the sequential CLI's, resume, faults, errors.

One local Ray instance (2 CPUs) serves the in-process jobs of this module; the fault test runs the CLI in its
own process (its own Ray) and kills one of that job's actors mid-run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, make_dicom, make_png, speckle_image

pytestmark = pytest.mark.timeout(600)


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "medai_core", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from medai_core.batch.run import _init_ray

    _init_ray(None)
    yield
    ray.shutdown()


def _job(modality: str, inputs: list, out: Path, **kw):
    from medai_core.batch.run import BatchJob, run_batch

    return run_batch(BatchJob(modality, [str(p) for p in inputs], out, workers=kw.pop("workers", 2),
                              batch_size=kw.pop("batch_size", 2), **kw), progress=None)


def _rows(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out)


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"scan{i:03d}.png"
        p.write_bytes(make_png(speckle_image(i, size=128)))
        paths.append(p)
    return paths


def test_expand_inputs_folders_manifests_once(tmp_path: Path):
    from medai_core.batch.inputs import expand_inputs

    a, b = _images(tmp_path / "scans", 2)
    (tmp_path / "scans" / ".hidden").write_text("x")
    (tmp_path / "list.csv").write_text(f"path,note\nscans/{a.name},x\n{b}\n\nmissing.png\n")
    got = expand_inputs([str(tmp_path / "scans"), str(tmp_path / "list.csv"), str(a)])
    assert got == [str(a), str(b), str(tmp_path / "missing.png")]  # relative to the manifest; each once
    # a records CSV is an input, not a manifest
    (tmp_path / "records.csv").write_text("id,age\n1,40\n")
    assert expand_inputs([str(tmp_path / "records.csv")]) == [str(tmp_path / "records.csv")]


def test_image_rows_equal_the_cli(tmp_path: Path, ray_local):
    _images(tmp_path / "in", 5)
    (tmp_path / "in" / "b.dcm").write_bytes(make_dicom(speckle_image(9)))
    (tmp_path / "in" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    res = _job("image", [tmp_path / "in", tmp_path / "gone.png"], tmp_path / "out.parquet", explain="gradcam",
               maps=tmp_path / "maps")
    assert (res.inputs, res.written, res.errors) == (8, 8, 2)
    rows = _rows(tmp_path / "out.parquet")
    assert len(rows) == 8 and rows["input"].is_unique
    cli = [json.loads(x) for x in _cli("image", "predict", str(tmp_path / "in"), str(tmp_path / "gone.png")).stdout.splitlines()]
    assert len(cli) == 8
    by = rows.set_index("file")
    for line in cli:
        r = by.loc[line["file"]]
        if "error" in line:
            assert r["error"] == line["error"] and pd.isna(r["label"])
            continue
        assert pd.isna(r["error"]) and r["model"] == line["model"] and r["label"] == line["label"]
        assert json.loads(r["probabilities"]) == line["probabilities"]
        assert bool(r["ood"]) == line["ood"] and r["ood_score"] == line["ood_score"]
        assert json.loads(r["route"]) == line["route"]  # routed by content, as the CLI without --model
        from medai_core.models import weights_digest

        assert r["weights_sha256"] == weights_digest(line["model"]) and r["seconds"] > 0
        assert len(r["input_sha256"]) == 64
        exp = json.loads(r["explanation"])
        assert Path(exp["npy"]).exists() and Path(exp["png"]).exists() and exp["target"] == line["label"]
    assert len(list((tmp_path / "maps").glob("*.npy"))) == 6 == len(list((tmp_path / "maps").glob("*.png")))
    # a forced model scores each batch in one forward pass: still the CLI's numbers
    _job("image", [tmp_path / "in"], tmp_path / "forced.parquet", model="busi_effnet", batch_size=4)
    by = _rows(tmp_path / "forced.parquet").set_index("file")
    cli = _cli("image", "predict", str(tmp_path / "in"), "--model", "busi_effnet").stdout.splitlines()
    for line in map(json.loads, cli):
        r = by.loc[line["file"]]
        if "error" in line:
            assert r["error"] == line["error"]
        else:
            assert r["label"] == line["label"] and bool(r["ood"]) == line["ood"]
            got = json.loads(r["probabilities"])
            assert all(abs(got[k] - v) <= 2e-6 for k, v in line["probabilities"].items())  # 6 places, batch rounding
            assert abs(r["ood_score"] - line["ood_score"]) <= 2e-4


def test_records_notes_vitals_rows_equal_the_cli(tmp_path: Path, ray_local):
    import io

    from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES
    from medai_core.workspaces.records.samples import synthetic_records
    from medai_core.workspaces.vitals.samples import synthetic_sepsis_record, synthetic_series_csv

    # records: a bad cell is set aside, identifiers (the id column) never reach the output
    df = synthetic_records(6)
    df["id"] = [f"MRN{i}" for i in range(6)]
    df["age"] = df["age"].astype(object)
    df.loc[2, "age"] = "old"
    (tmp_path / "r.csv").write_text(df.to_csv(index=False))
    _job("records", [tmp_path / "r.csv"], tmp_path / "r.parquet")
    rows = _rows(tmp_path / "r.parquet").sort_values("row")
    cli = pd.read_csv(io.StringIO(_cli("records", "predict", str(tmp_path / "r.csv")).stdout))
    assert list(rows["row"]) == list(range(1, 7))
    assert rows["risk"].round(4).tolist() == cli["risk"].round(4).tolist()
    assert rows["label"].tolist() == cli["label"].tolist()
    assert rows["warnings"].fillna("").tolist() == cli["warnings"].fillna("").tolist() and rows["warnings"].iloc[2]
    assert "MRN" not in rows.to_csv()
    # notes: a .txt and a CSV with an id column and an empty note
    notes = list(SYNTHETIC_NOTES.values())
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "a.txt").write_text(notes[0])
    pd.DataFrame({"id": ["PT-1", "PT-2", "PT-3"], "text": [notes[1], "", notes[2]]}).to_csv(tmp_path / "n" / "b.csv", index=False)
    _job("notes", [tmp_path / "n"], tmp_path / "n.parquet")
    rows = _rows(tmp_path / "n.parquet")
    cli = [json.loads(x) for x in _cli("notes", "predict", str(tmp_path / "n")).stdout.splitlines()]
    assert len(rows) == len(cli) == 4 and "PT-" not in rows.to_csv()
    got = rows.sort_values(["file", "row"], na_position="first")
    for (_, r), line in zip(got.iterrows(), cli):
        if "error" in line:
            assert r["row"] == 2 and r["error"] and pd.isna(r["label"])
        else:
            assert r["label"] == line["label"] and json.loads(r["probabilities"]) == line["probabilities"]
    # vitals: a forecast, and the sepsis model's hourly risk
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.csv").write_bytes(synthetic_series_csv("icu_gru", next(iter(__import__(
        "medai_core.workspaces.vitals.samples", fromlist=["SYNTHETIC_ICU_CASES"]).SYNTHETIC_ICU_CASES))))
    (tmp_path / "v" / "b.psv").write_bytes(synthetic_sepsis_record("deteriorating"))
    _job("vitals", [tmp_path / "v" / "a.csv"], tmp_path / "v.parquet")
    r = _rows(tmp_path / "v.parquet").iloc[0]
    line = json.loads(_cli("vitals", "forecast", str(tmp_path / "v" / "a.csv")).stdout)
    assert json.loads(r["forecast"]) == line["forecast"] and json.loads(r["notices"]) == line["notices"]
    _job("vitals", [tmp_path / "v" / "b.psv"], tmp_path / "s.parquet", model="sepsis_gru")
    r = _rows(tmp_path / "s.parquet").iloc[0]
    line = json.loads(_cli("vitals", "sepsis", str(tmp_path / "v" / "b.psv")).stdout)
    assert json.loads(r["risk"]) == line["risk"] and json.loads(r["alarm"]) == line["alarm"]


def test_resume_skips_what_is_written(tmp_path: Path, ray_local):
    from medai_core.errors import InputError

    paths = _images(tmp_path / "in", 6)
    out = tmp_path / "out.parquet"
    _job("image", paths[:3], out, model="busi_cnn")
    with pytest.raises(InputError, match="--resume"):
        _job("image", paths, out, model="busi_cnn")
    import io

    from medai_core.batch.run import BatchJob, run_batch

    bar = io.StringIO()  # the progress bar: inputs done of those left, the rate, the time left
    res = run_batch(BatchJob("image", list(map(str, paths)), out, model="busi_cnn", workers=2, batch_size=2,
                             resume=True), progress=bar)
    assert (res.inputs, res.skipped, res.written) == (6, 3, 3)
    shown = bar.getvalue()
    assert "3/3" in shown and ("input/s" in shown or "s/input" in shown), shown
    rows = _rows(out)
    assert sorted(rows["input"]) == sorted(map(str, paths)) and rows["input"].is_unique
    assert _job("image", paths, out, model="busi_cnn", resume=True).written == 0


def test_jobs_that_cannot_start_fail_first(tmp_path: Path):
    from medai_core.batch.run import BatchJob, check_job
    from medai_core.errors import InputError, MedAIError

    with pytest.raises(InputError, match="not for `batch records`"):
        check_job(BatchJob("records", [], tmp_path / "o", model="busi_cnn"))
    with pytest.raises(InputError, match="--maps"):
        check_job(BatchJob("image", [], tmp_path / "o", explain="gradcam"))
    with pytest.raises(MedAIError):
        check_job(BatchJob("image", [], tmp_path / "o", model="no_such_model"))
    res = _cli("batch", "image", str(tmp_path), "--out", str(tmp_path / "o"), "--explain", "gradcam")
    assert res.returncode == 2 and "--maps" in res.stderr and "Traceback" not in res.stderr
    from tests.support.server import free_port

    (tmp_path / "a.png").write_bytes(make_png(speckle_image(1)))
    for address in (f"127.0.0.1:{free_port()}", f"ray://127.0.0.1:{free_port()}"):  # nothing listens there
        res = _cli("batch", "image", str(tmp_path / "a.png"), "--out", str(tmp_path / "o2"), "--address", address,
                   timeout=60)
        assert res.returncode == 2 and "Could not reach the Ray cluster" in res.stderr, res.stderr[-500:]
        assert "Traceback" not in res.stderr


def _job_workers(pid: int) -> list:
    import psutil

    out = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if "MapWorker" in " ".join(p.cmdline()) or "MapWorker" in p.name():
                out.append(p)
        except psutil.Error:
            continue
    return out


def test_a_killed_worker_loses_nothing(tmp_path: Path):
    """Kill one of the job's two actors mid-run (SIGKILL): the job still ends, every input exactly once."""
    paths = _images(tmp_path / "in", 40)
    out = tmp_path / "out.parquet"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "medai_core", "batch", "image", str(tmp_path / "in"), "--out",
                             str(out), "--model", "busi_cnn", "--explain", "gradcam", "--maps", str(tmp_path / "maps"),
                             "--workers", "2", "--batch-size", "2", "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed, parts_then, deadline = None, None, time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            parts = list(out.glob("part-*.parquet")) if out.exists() else []
            workers = _job_workers(proc.pid)
            if parts and len(workers) == 2:  # scoring has started on both actors
                killed = workers[0].pid
                parts_then = len(parts)
                os.kill(killed, signal.SIGKILL)
                break
            time.sleep(0.2)
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, f"no worker to kill before the job ended: {stderr[-2000:]}"
    assert proc.returncode == 0, stderr[-3000:]
    rows = _rows(out)
    assert parts_then < 20  # the kill came mid-run: 40 inputs in batches of 2 make 20 parts
    assert sorted(rows["input"]) == sorted(map(str, paths))  # every input, exactly once
    assert rows["error"].isna().all()
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["written"] == 40 and summary["rows"] == 40
    from medai_core.audit import open_store  # the job's one audit record: counts, no paths

    jobs = [r for r in open_store().query(action="batch") if r.summary.get("written") == 40]
    assert jobs and jobs[0].model == "busi_cnn" and len(jobs[0].input_sha256) == 64
    assert str(tmp_path) not in json.dumps([jobs[0].params, jobs[0].summary])


def test_no_identifier_reaches_the_parquet_or_the_maps(tmp_path: Path, ray_local):
    """The leakage test's planted identifiers (DICOM patient name and ID, a records id column, a notes id and
    a name in the note's text) are in none of the output's bytes."""
    from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES
    from medai_core.workspaces.records.samples import synthetic_records
    from tests.e2e.test_leakage import MARKERS, NAME, NOTE_MARK, PID, RECORD_MARK

    dcm = make_dicom(speckle_image(3), patient_name=NAME).replace(b"MRN-0001", PID[:8].encode())
    assert b"Leakcheck" in dcm
    (tmp_path / "scan.dcm").write_bytes(dcm)
    df = synthetic_records(4)
    df["id"] = [RECORD_MARK + str(i) for i in range(4)]
    (tmp_path / "records.csv").write_text(df.to_csv(index=False))
    note = list(SYNTHETIC_NOTES.values())[0] + f" Patient {NOTE_MARK} seen today."
    pd.DataFrame({"id": [RECORD_MARK, PID], "text": [note, ""]}).to_csv(tmp_path / "notes.csv", index=False)
    outs = [tmp_path / "o-image", tmp_path / "o-records", tmp_path / "o-notes"]
    _job("image", [tmp_path / "scan.dcm"], outs[0], explain="gradcam", maps=tmp_path / "maps")
    _job("records", [tmp_path / "records.csv"], outs[1], explain="shapley_sampling", maps=tmp_path / "maps")
    _job("notes", [tmp_path / "notes.csv"], outs[2], explain="integrated_gradients", maps=tmp_path / "maps")
    files = [p for d in [*outs, tmp_path / "maps"] for p in d.iterdir()]
    assert len(files) >= 3 + 4 + 1 + 2  # three outputs; a map per scan (npy + png), record and scored note
    for p in files:
        data = p.read_bytes()
        assert not [m for m in MARKERS if m in data], p.name
    assert len(_rows(outs[1])) == 4 and len(_rows(outs[2])) == 2
