"""Shared fixtures: test data made here (seeded) or taken from files pydicom ships."""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# no user models but the tests' own: an empty MEDAI_MODEL_DIRS keeps ~/.medai/models (the default) out
os.environ.setdefault("MEDAI_MODEL_DIRS", "")


@pytest.fixture(scope="session", autouse=True)
def _private_audit_trail(tmp_path_factory):
    """Every test run writes its audit records to its own SQLite file (pages, the CLI's subprocesses, the
    servers), never to the user's ``~/.medai/audit.sqlite``; unless the run names a store itself."""
    import os

    if os.environ.get("MEDAI_AUDIT_URL") or os.environ.get("MEDAI_AUDIT_PATH"):
        yield
        return
    os.environ["MEDAI_AUDIT_PATH"] = str(tmp_path_factory.mktemp("audit") / "audit.sqlite")
    yield
    os.environ.pop("MEDAI_AUDIT_PATH", None)


@pytest.fixture(scope="session", autouse=True)
def _background_warmup_ends_before_exit():
    """AppTests of app.py start the server's warm-up thread (``ui.prewarm``: imports and model loads). A test
    process that ends while it still loads torch models aborts in torch's teardown ("terminate called without an
    active exception"), so the session waits for it to finish."""
    yield
    import threading

    for t in threading.enumerate():
        if t.name == "medai-prewarm":
            t.join(timeout=300)


def pydicom_file(name: str) -> Path:
    """A test file shipped by pydicom or the pydicom-data package (never downloaded)."""
    from medai_core.workspaces.imaging.samples import _pydicom_dirs

    for d in _pydicom_dirs():
        if (d / name).exists():
            return d / name
    pytest.skip(f"{name} not shipped by the installed pydicom packages")


def make_dicom(pixels: np.ndarray, *, photometric: str = "MONOCHROME2", slope: float | None = None,
               intercept: float | None = None, window: tuple[float, float] | None = None,
               syntax: str = "1.2.840.10008.1.2.1", patient_name: str = "Doe^Jane", modality: str = "US",
               with_pixels: bool = True) -> bytes:
    """A small but valid DICOM Part 10 file built in memory."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(syntax)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = patient_name
    ds.PatientID = "MRN-0001"
    ds.PatientBirthDate = "19700101"
    ds.InstitutionName = "Test Hospital"
    ds.Modality = modality
    ds.StudyInstanceUID = generate_uid()
    if with_pixels:
        arr = np.ascontiguousarray(pixels)
        ds.Rows, ds.Columns = arr.shape[-2:] if arr.ndim in (2, 3) and photometric.startswith("MONO") else arr.shape[-3:-1]
        ds.SamplesPerPixel = 1 if photometric.startswith("MONO") else 3
        if ds.SamplesPerPixel == 3:
            ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = arr.dtype.itemsize * 8
        ds.BitsStored = ds.BitsAllocated
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
        if (photometric.startswith("MONO") and arr.ndim == 3) or arr.ndim == 4:
            ds.NumberOfFrames = arr.shape[0]
        if slope is not None:
            ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        ds.PixelData = arr.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_png(arr: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def speckle_image(seed: int = 0, size: int = 256) -> np.ndarray:
    """A synthetic ultrasound-like 8-bit image: speckle, a dark round 'lesion'."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    base = 0.35 + 0.25 * np.exp(-((yy - 0.3) ** 2) / 0.05)
    lesion = ((yy - 0.55) ** 2 + (xx - 0.5) ** 2) < 0.02
    base[lesion] *= 0.25
    img = base * rng.rayleigh(0.8, (size, size))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def busi():
    from medai_core.models import get_spec, load_model

    return load_model("busi_cnn"), get_spec("busi_cnn")


def open_page(page: str, timeout: float = 180):
    """AppTest of app.py switched to ``pages/<page>.py`` (through the router, as a user arrives);
    fails if the page raised."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.run()
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception
    return at


def run_sanity_toggle(at, timeout: float = 120.0) -> list[str]:  # noqa: ANN001 - an AppTest
    """Switch on the page's "Sanity check of this map" toggle and rerun until both verdict boxes show;
    returns the texts of the success/warning/error boxes."""
    import time

    next(t for t in at.toggle if t.label == "Sanity check of this map").set_value(True).run()
    deadline = time.time() + timeout
    while time.time() < deadline:
        boxes = [b.value for b in [*at.success, *at.warning, *at.error]]
        if any("Randomisation check" in v for v in boxes) and any("Faithfulness" in v for v in boxes):
            return boxes
        time.sleep(0.3)
        at.run()
    raise AssertionError("sanity check did not finish")
