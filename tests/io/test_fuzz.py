"""Property-based fuzzing of every upload loader (hypothesis): valid seed files are mutated at the byte
level (flips, truncation, insertion, deletion, splices) and, for text formats, at the cell level (nasty
values, dropped/duplicated/shuffled lines and columns). The loader, and the model step that follows a
successful load, may only fail with the project's own ``InputError`` carrying a message.

CI runs a short, derandomised profile. Longer run (random, thousands of cases per loader):

    HYPOTHESIS_PROFILE=fuzz-long python -m pytest tests/io/test_fuzz.py
"""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medai_core.errors import InputError
from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES
from medai_core.workspaces.records.samples import synthetic_records
from medai_core.workspaces.vitals.samples import SYNTHETIC_SERIES, synthetic_series_csv
from tests.conftest import make_dicom, make_png, speckle_image

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fuzz-long", max_examples=3000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

NASTY_CELLS = ["", " ", "NaN", "nan", "-1", "inf", "-inf", "1e308", "-1e308", "1e-320", "0", "00:00", "99:99",
               "１２３", "\x00", "\ufeff", "é", "😀", "'", '"', '""', "\\", ",", ";", "\t", "=1+1", "<script>",
               "1,5", "12:30:61", "2026-02-30", "9" * 400, "x" * 5000, "None", "null", "TRUE", "-0", "0x1F"]


@st.composite
def byte_mutation(draw, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite", "splice"]))
        n = len(data)
        at = draw(st.integers(0, max(n - 1, 0)))
        if op == "flip" and n:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 256))]
        elif op == "overwrite" and n:
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at:at + len(chunk)] = chunk
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            data[at:] = other[draw(st.integers(0, max(len(other) - 1, 0))):]
    return bytes(data)


@st.composite
def csv_mutation(draw, seeds: list[bytes], sep: str = ",", nasty: list[str] = NASTY_CELLS) -> bytes:
    text = draw(st.sampled_from(seeds)).decode()
    lines = [line.split(sep) for line in text.splitlines()]
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["cell", "cell", "cell", "drop_line", "dup_line", "swap_lines", "drop_col",
                                   "header", "extra_col", "bytes"]))
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        j = draw(st.integers(0, max(len(lines[i]) - 1, 0)))
        if op == "cell" and lines[i]:
            lines[i][j] = draw(st.sampled_from(nasty) | st.text(max_size=12))
        elif op == "drop_line":
            del lines[i]
        elif op == "dup_line":
            lines.insert(i, list(lines[i]))
        elif op == "swap_lines":
            k = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[k] = lines[k], lines[i]
        elif op == "drop_col":
            for line in lines:
                if j < len(line):
                    del line[j]
        elif op == "header" and lines[0]:
            lines[0][min(j, len(lines[0]) - 1)] = draw(st.sampled_from(["", "time", "id", "TEXT", "HR", "x", "Unnamed: 0"]))
        elif op == "extra_col":
            lines[i].append(draw(st.sampled_from(nasty)))
    out = "\n".join(sep.join(line) for line in lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()) and out:
        out = draw(byte_mutation([out]))
    return out


def _only_input_errors(fn, data) -> None:  # noqa: ANN001
    try:
        fn(data)
    except InputError as err:
        assert str(err).strip(), "an InputError must carry a message"


# ---- scans ----------------------------------------------------------------------------------------

def _image_seeds() -> list[bytes]:
    small = speckle_image(1, 32)
    from PIL import Image

    out = [make_png(small, fmt) for fmt in ("PNG", "JPEG", "BMP", "TIFF")]
    buf = io.BytesIO()
    Image.fromarray(small).convert("P").save(buf, format="GIF")
    return out + [buf.getvalue(), make_png(np.dstack([small] * 3))]


def _dicom_seeds() -> list[bytes]:
    s = speckle_image(2, 32)
    return [make_dicom(s),
            make_dicom(s.astype(np.uint16) * 16, slope=1.0, intercept=-1024, window=(40, 400), modality="CT"),
            make_dicom(np.dstack([s] * 3), photometric="RGB"),
            make_dicom(np.stack([s, s[::-1]])),
            make_dicom(s.astype(np.int16) - 100, syntax="1.2.840.10008.1.2")]


@pytest.fixture(scope="module")
def busi_spec():
    from medai_core.models import get_spec

    return get_spec("busi_cnn")


def _scan_pipeline(spec):  # noqa: ANN001, ANN202
    from medai_core.workspaces.imaging.pipeline import model_view, prepare_input
    from medai_core.io import load_scan

    def run(data: bytes) -> None:
        scan = load_scan(data)
        for f in range(min(scan.n_frames, 2)):
            view = model_view(scan, f)
            assert np.isfinite(view).all()
            x = prepare_input(scan, spec, f)
            assert x.shape[-2:] == tuple(spec.input_size) and bool(x.isfinite().all())
    return run


@given(data=byte_mutation(_dicom_seeds()))
def test_fuzz_dicom(data, busi_spec):
    _only_input_errors(_scan_pipeline(busi_spec), data)


def _deidentify(data: bytes) -> None:
    import pydicom

    from medai_core.io import deidentify_dicom

    out = deidentify_dicom(data, allow_burned_in=True, salt="fuzz").data
    ds = pydicom.dcmread(io.BytesIO(out))  # what the export writes, pydicom reads back
    assert ds.PatientIdentityRemoved == "YES" and not any(e.tag.is_private for e in ds.iterall())


@given(data=byte_mutation(_dicom_seeds()))
def test_fuzz_deidentify_dicom(data):
    _only_input_errors(_deidentify, data)


@given(data=byte_mutation(_image_seeds()))
def test_fuzz_images(data, busi_spec):
    _only_input_errors(_scan_pipeline(busi_spec), data)


# ---- records ---------------------------------------------------------------------------------------

_RECORD_SEEDS = [synthetic_records(3, seed=s).to_csv(index=False).encode() for s in (1, 2)]


@pytest.fixture(scope="module")
def support():
    from medai_core.models import get_spec, load_model

    return get_spec("support_ftt"), load_model("support_ftt")


@given(data=csv_mutation(_RECORD_SEEDS))
def test_fuzz_records_csv(data, support):
    from medai_core.io.records import load_records
    from medai_core.workspaces.records.pipeline import score

    def run(b: bytes) -> None:
        table = load_records(b)
        risk = score(support[1], support[0], table).risk
        scored = table.scored_mask()  # issue 13: a row marked not scored (a DataChange) has no risk
        assert np.isfinite(risk[scored]).all() and ((risk[scored] >= 0) & (risk[scored] <= 1)).all()
        assert np.isnan(risk[~scored]).all()

    _only_input_errors(run, data)


# ---- notes -----------------------------------------------------------------------------------------

_NOTE_TEXT = list(SYNTHETIC_NOTES.values())[0].encode()
_NOTE_CSV = ('id,text\n' + "\n".join(f'n{i},"{t[:300]}"' for i, t in enumerate(SYNTHETIC_NOTES.values()))).encode()


@pytest.fixture(scope="module")
def notes_model():
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.notes.pipeline import load_vocab

    spec = get_spec("notes_tfm")
    return spec, load_model("notes_tfm"), load_vocab(spec)


@given(data=byte_mutation([_NOTE_TEXT, _NOTE_CSV]) | csv_mutation([_NOTE_CSV]), csv=st.booleans())
def test_fuzz_notes(data, csv, notes_model):
    from medai_core.io.notes import load_notes
    from medai_core.workspaces.notes.pipeline import classify

    spec, model, vocab = notes_model

    def run(b: bytes) -> None:
        for note in load_notes(b, "notes.csv" if csv else "note.txt")[:3]:
            p = classify(model, spec, vocab, note.text)
            assert abs(sum(p.probabilities.values()) - 1) < 1e-6

    _only_input_errors(run, data)


# ---- vital-sign series -----------------------------------------------------------------------------

_SERIES_SEEDS = [synthetic_series_csv("icu_gru", label) for label in
                 list(SYNTHETIC_SERIES["icu_gru"])[:2]]
_SERIES_SEEDS += [synthetic_series_csv("cgm_gru", "After a meal (synthetic)"),
                  b"time,parameter,value\n00:00,RecordID,1\n00:00,Age,60\n" +
                  b"".join(f"{h:02d}:{m:02d},HR,{80 + h}\n{h:02d}:{m:02d},NIMAP,{75 - h}\n".encode()
                           for h in range(8) for m in (0, 30))]


@pytest.fixture(scope="module")
def forecasters():
    from medai_core.models import get_spec, load_model

    return {n: (get_spec(n), load_model(n)) for n in ("icu_gru", "cgm_gru")}


@given(data=csv_mutation(_SERIES_SEEDS) | byte_mutation(_SERIES_SEEDS), name=st.sampled_from(["icu_gru", "cgm_gru"]))
def test_fuzz_vital_series(data, name, forecasters):
    from medai_core.io.vitals import load_series
    from medai_core.workspaces.vitals.pipeline import forecast

    spec, model = forecasters[name]

    def run(b: bytes) -> None:
        series = load_series(b, spec.extra["series"])
        q = forecast(model, spec, series).quantiles
        assert np.isfinite(q).all()

    _only_input_errors(run, data)


def _psv_seed(hours: int, seed: int) -> bytes:
    """A PhysioNet 2019 record (41 pipe-separated columns, one row per ICU hour) with a heart rate of 0."""
    from medai_core.io.vitals import PHYSIONET_2019_COLUMNS

    rng = np.random.default_rng(seed)
    rows = ["|".join(PHYSIONET_2019_COLUMNS)]
    for h in range(1, hours + 1):
        row = dict.fromkeys(PHYSIONET_2019_COLUMNS, "NaN")
        row.update({"HR": "0" if h == 3 else f"{85 + rng.normal(0, 3):.1f}", "MAP": f"{80 + rng.normal(0, 3):.1f}",
                    "SBP": f"{120 + rng.normal(0, 5):.0f}", "Temp": f"{37 + rng.normal(0, .3):.2f}", "Resp": "18",
                    "Age": "66", "Gender": "1", "Unit1": "1", "Unit2": "0", "HospAdmTime": "-3.5", "ICULOS": str(h),
                    "SepsisLabel": "0"})
        rows.append("|".join(row[c] for c in PHYSIONET_2019_COLUMNS))
    return ("\n".join(rows) + "\n").encode()


_PSV_SEEDS = [_psv_seed(10, 0), _psv_seed(30, 1)]


@given(data=csv_mutation(_PSV_SEEDS, sep="|", nasty=[*NASTY_CELLS, "|", "ICULOS", "SepsisLabel"]) | byte_mutation(_PSV_SEEDS))
def test_fuzz_physionet_2019_psv(data, forecasters):
    from medai_core.io.vitals import load_series
    from medai_core.workspaces.vitals.pipeline import forecast

    spec, model = forecasters["icu_gru"]

    def run(b: bytes) -> None:
        series = load_series(b, spec.extra["series"])
        assert all(c.field in series.signals and c.action for c in series.changes)
        q = forecast(model, spec, series).quantiles
        assert np.isfinite(q).all()

    _only_input_errors(run, data)


@given(data=csv_mutation(_PSV_SEEDS, sep="|", nasty=[*NASTY_CELLS, "|", "ICULOS", "SepsisLabel"]) | byte_mutation(_PSV_SEEDS))
def test_fuzz_sepsis_records(data, sepsis):
    """Any mangled record: a clear InputError, or a finite risk and a 0/1 alarm for every row."""
    from medai_core.workspaces.vitals.sepsis import load_record, score_record

    spec, model = sepsis

    def run(b: bytes) -> None:
        record = load_record(b, spec)
        sc = score_record(model, spec, record)
        assert len(sc.risk) == record.n_hours and np.isfinite(sc.risk).all()
        assert all(c.action and c.reason for c in record.changes)

    _only_input_errors(run, data)


@pytest.fixture(scope="module")
def sepsis():
    from medai_core.models import get_spec, load_model

    return get_spec("sepsis_gru"), load_model("sepsis_gru")


# ---- cases the long run found (kept as regressions) ------------------------------------------------

def test_trailing_comma_row_is_a_clear_error_not_an_index():
    """pandas made the timestamps the index when one row had an extra field; every CSV loader refuses."""
    from medai_core.io.notes import load_notes
    from medai_core.io.records import load_records
    from medai_core.io.vitals import load_series
    from medai_core.models.forecaster import CGM_SERIES

    series = b"timestamp,Glucose\n2024-03-01 10:00,98.0,\n" + b"".join(
        f"2024-03-01 {10 + i // 12}:{5 * (i % 12):02d},{100 + i}\n".encode() for i in range(1, 40))
    for call in (lambda: load_series(series, CGM_SERIES),
                 lambda: load_notes(b"id,text\n1,hello there,\n2,again\n", "n.csv"),
                 lambda: load_records(b"\n".join(line + b"," * (i == 1) for i, line in
                                                  enumerate(_RECORD_SEEDS[0].split(b"\n"))))):
        with pytest.raises(InputError, match="more values than the header"):
            call()


def test_damaged_tiff_page_directory():
    """A 32 x 32 TIFF whose next-page pointer is 1: Pillow raises TypeError while counting pages."""
    from medai_core.errors import CorruptFile
    from medai_core.io import load_scan

    entries = [(256, 4, 32), (257, 4, 32), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 122), (278, 4, 32),
               (279, 4, 1024), (284, 3, 1)]
    ifd = len(entries).to_bytes(2, "little") + b"".join(
        tag.to_bytes(2, "little") + kind.to_bytes(2, "little") + (1).to_bytes(4, "little") + value.to_bytes(4, "little")
        for tag, kind, value in entries)
    data = b"II*\x00\x08\x00\x00\x00" + ifd + (1).to_bytes(4, "little") + bytes(1024)
    with pytest.raises(CorruptFile, match="damaged"):
        load_scan(data)


def test_garbled_or_offset_timestamps():
    """A garbled date row made pandas raise 'Mixed timezones'; it is now a reported bad row, and
    timestamps with different UTC offsets are put on one clock."""
    from medai_core.io.vitals import SeriesError, load_series
    from medai_core.models.forecaster import CGM_SERIES

    rows = b"".join(f"2024-03-01 10:{5 * i:02d},{100 + i}\n".encode() for i in range(10))
    with pytest.raises(SeriesError, match="Unparseable timestamps in rows 12"):
        load_series(b"timestamp,Glucose\n" + rows + b"2024-03-01 2024-03-01 12:20,124\n", CGM_SERIES)
    offsets = b"".join(f"2024-03-01T10:{5 * i:02d}+01:00,{100 + i}\n".encode() for i in range(10))
    s = load_series(b"timestamp,Glucose\n" + offsets + b"2024-03-01T09:50:00+00:00,124\n", CGM_SERIES)
    assert s.n_steps == 11 and s.values[-1, 0] == 124  # 09:50 UTC = 10:50 +01:00, right after 10:45


def test_unknown_value_representation_in_deidentify_is_an_input_error():
    """Found by the long fuzz run: a file meta element whose VR was garbled to 'TI' made pydicom raise
    NotImplementedError inside the de-identification export. It is a CorruptFile now, naming no value."""
    from medai_core.errors import CorruptFile
    from medai_core.io.deid import deidentify_dicom

    data = make_dicom(np.zeros((8, 8), np.uint8), patient_name="Zzyzx^Planted")
    i = data.index(b"\x02\x00\x02\x00UI")  # (0002,0002) MediaStorageSOPClassUID, explicit VR
    bad = data[:i + 4] + b"TI" + data[i + 6:]
    with pytest.raises(CorruptFile) as err:
        deidentify_dicom(bad, allow_burned_in=True)
    assert "Zzyzx" not in str(err.value)


def test_export_is_verified_by_reading_it_back(monkeypatch):
    """Found by the long fuzz run: a damaged input (a mutated length) was exported without error, but the bytes
    read back as a different structure (no PatientIdentityRemoved, a private element). The export now reads
    its own bytes back and refuses when the profile does not hold there."""
    import pydicom

    from medai_core.errors import CorruptFile
    from medai_core.io import deid

    clean = deid.deidentify_dicom(make_dicom(np.zeros((8, 8), np.uint8)), allow_burned_in=True).data
    assert deid._verify_export(clean) is None
    ds = pydicom.dcmread(io.BytesIO(clean))
    del ds.PatientIdentityRemoved
    buf = io.BytesIO()
    ds.save_as(buf)
    assert "identity" in deid._verify_export(buf.getvalue())
    ds = pydicom.dcmread(io.BytesIO(clean))
    ds.add_new(0x00291010, "LO", "vendor")
    buf = io.BytesIO()
    ds.save_as(buf)
    assert "private" in deid._verify_export(buf.getvalue())
    monkeypatch.setattr(deid, "_verify_export", lambda data: "still holds private attributes")
    with pytest.raises(CorruptFile, match="read back"):
        deid.deidentify_dicom(make_dicom(np.zeros((8, 8), np.uint8)), allow_burned_in=True)


@pytest.mark.parametrize("name", ["value", "parameter"])
def test_wide_series_with_a_column_named_like_the_long_format(name):
    """Found by the long fuzz run: a wide series with a column named 'value' made pandas' melt raise
    ValueError. That column is now an unknown signal like any other (a notice), and the rest loads."""
    from medai_core.io.vitals import SeriesError, load_series
    from medai_core.models import get_spec

    spec = get_spec("icu_gru").extra["series"]
    rows = "\n".join(f"{h:02d}:00,{80 + h},{70 + h % 3},x" for h in range(8))
    data = f"timestamp,HR,MAP,{name}\n{rows}\n".encode()
    try:
        series = load_series(data, spec)
    except SeriesError as err:  # a clear error is allowed; a pandas ValueError is not
        assert err.problems
        return
    assert any(name in n for n in series.notices)
