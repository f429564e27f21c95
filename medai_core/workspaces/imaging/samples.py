"""Demo scans: three paediatric chest films shipped in ``assets/demo`` (from the chest model's development split,
credited below; CC BY 4.0), and real DICOMs from files that dependencies ship (pydicom's test files and the
``pydicom-data`` package). Nothing is downloaded at run time; no BUSI images are shipped."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from medai_core.io.scan import Scan


def _pydicom_dirs() -> list[Path]:
    dirs = []
    try:
        import data_store  # the pydicom-data package

        dirs.append(Path(data_store.__file__).resolve().parent / "data")
    except ImportError:
        pass
    import pydicom

    dirs.append(Path(pydicom.__file__).resolve().parent / "data" / "test_files")
    return dirs


DEMO_DIR = Path(__file__).resolve().parents[3] / "assets" / "demo"
CXR_CREDIT = ("Chest X-ray from Kermany, Zhang, Goldbaum et al., \"Labeled Optical Coherence Tomography (OCT) and "
              "Chest X-Ray Images for Classification\", Mendeley Data (2018), CC BY 4.0; resized to 224 x 224.")

# label -> (file name, what it shows)
SAMPLES: dict[str, tuple[str, str]] = {
    "Chest X-ray, normal (child)": ("chest_xray_normal.jpeg", "paediatric chest film, labelled normal. " + CXR_CREDIT),
    "Chest X-ray, bacterial pneumonia (child)": ("chest_xray_bacterial.jpeg",
                                                 "paediatric chest film, labelled bacterial pneumonia. " + CXR_CREDIT),
    "Chest X-ray, viral pneumonia (child)": ("chest_xray_viral.jpeg",
                                             "paediatric chest film, labelled viral pneumonia. " + CXR_CREDIT),
    "Ultrasound, RGB (US1)": ("US1_UNCR.dcm", "ultrasound, not breast: expect an out-of-distribution warning"),
    "Ultrasound, multi-frame JPEG (YBR)": ("examples_ybr_color.dcm", "30-frame ultrasound cine, JPEG baseline"),
    "Ultrasound, palette colour (OB)": ("OBXXXX1A.dcm", "obstetric ultrasound, PALETTE COLOR"),
    "CT, 16-bit (CT_small)": ("CT_small.dcm", "CT slice with rescale slope/intercept"),
    "MR, multi-frame (emri_small)": ("emri_small.dcm", "10-frame MR"),
    "MR, JPEG 2000 (MR2)": ("MR2_J2KR.dcm", "MR in JPEG 2000 lossless"),
    "Radiograph, MONOCHROME1 (RG3)": ("RG3_UNCR.dcm", "computed radiograph, inverted grey scale"),
    "MR, JPEG-LS (emri_small)": ("emri_small_jpeg_ls_lossless.dcm", "multi-frame MR, JPEG-LS lossless"),
    "Secondary capture, VOI LUT (vlut_04)": ("vlut_04.dcm", "non-linear VOI LUT"),
}


def sample_path(label: str) -> Path:
    """Path of a bundled demo scan (raises FileNotFoundError if its package is missing)."""
    name = SAMPLES[label][0]
    for d in [DEMO_DIR, *_pydicom_dirs()]:
        p = d / name
        if p.exists():
            return p
    raise FileNotFoundError(f"demo scan {name} not found (is pydicom-data installed?)")


def available_samples() -> list[str]:
    out = []
    for label in SAMPLES:
        try:
            sample_path(label)
            out.append(label)
        except FileNotFoundError:
            pass
    return out


def reference_dicoms() -> list[Path]:
    """Every DICOM pydicom and pydicom-data ship (CT, MR, radiographs, NM, other ultrasound...),
    used to measure how often the OOD guard flags scans that are not breast ultrasound."""
    out = []
    for d in _pydicom_dirs():
        for p in sorted(d.glob("*.dcm")):
            out.append(p)
    return out


def reference_scans() -> Iterator[tuple[Path, "Scan", bool]]:
    """Every decodable ``reference_dicoms()`` file and the two photographs matplotlib ships, as
    (path, scan, is_photo); unreadable files and tiny synthetic test patterns (< 32 px) left out. The scans the
    OOD reports (``train.busi_card``, ``train.routing_report``) measure the guards on."""
    import matplotlib

    from medai_core.io import load_scan

    sample_dir = Path(matplotlib.get_data_path()) / "sample_data"
    photos = [sample_dir / "grace_hopper.jpg", sample_dir / "Minduka_Present_Blue_Pack.png"]
    for p in reference_dicoms() + photos:
        try:
            scan = load_scan(p)
        except Exception:  # noqa: BLE001 - unreadable test files are not part of these reports
            continue
        if min(scan.shape) >= 32:
            yield p, scan, p in photos
