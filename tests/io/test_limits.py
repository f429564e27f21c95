"""Every resource limit refuses with ``TooLarge`` and a message that states the limit. Limits are lowered
with monkeypatch so the test inputs stay small; the shipped values are checked for sanity at the end."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from medai_core.errors import TooLarge
from medai_core.io import images as io_images
from medai_core.io import load_scan
from medai_core.io import notes as io_notes
from medai_core.io import records as io_records
from medai_core.io import scan as io_scan
from medai_core.io import vitals as io_vitals
from medai_core.io.notes import load_notes
from medai_core.io.records import load_records
from medai_core.io.vitals import load_series
from medai_core.models.forecaster import ICU_SERIES
from medai_core.workspaces.records.samples import synthetic_records
from tests.conftest import make_dicom, make_png, speckle_image


def _tiff_pages(n: int) -> bytes:
    pages = [Image.fromarray(speckle_image(i, 16)) for i in range(n)]
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


def _long_series(hours: int) -> bytes:
    rows = [f"{h:02d}:{m:02d},HR,{80 + (h % 7)}" for h in range(hours) for m in (0,)]
    return ("time,parameter,value\n" + "\n".join(rows) + "\n").encode()


def _hhmm_series(steps: int) -> bytes:
    return ("time,parameter,value\n" + "\n".join(f"{h}:00,HR,80" for h in range(steps)) + "\n").encode()


CASES = [
    # (name, patches, call, words the message must contain)
    ("scan bytes", [(io_scan, "MAX_BYTES", 1000)], lambda: load_scan(make_png(speckle_image(0, 128))), "limit is"),
    ("image pixels per frame", [(io_scan, "MAX_PIXELS", 100), (io_images, "MAX_PIXELS", 100)],
     lambda: load_scan(make_png(speckle_image(0, 32))), "megapixels"),
    ("image pages", [(io_scan, "MAX_FRAMES", 2), (io_images, "MAX_FRAMES", 2)], lambda: load_scan(_tiff_pages(3)),
     "limit is 2"),
    ("DICOM frames", [(io_scan, "MAX_FRAMES", 2)],
     lambda: load_scan(make_dicom(np.stack([speckle_image(i, 16) for i in range(3)]))), "limit is 2"),
    ("DICOM pixels", [(io_scan, "MAX_PIXELS", 100)], lambda: load_scan(make_dicom(speckle_image(0, 32))), "megapixels"),
    ("scan values in total", [(io_scan, "MAX_TOTAL_PIXELS", 500)],
     lambda: load_scan(make_dicom(np.stack([speckle_image(i, 16) for i in range(3)]))), "million"),
    ("records bytes", [(io_records, "MAX_BYTES", 100)],
     lambda: load_records(synthetic_records(5).to_csv(index=False).encode()), "limit"),
    ("records rows", [(io_records, "MAX_ROWS", 3)],
     lambda: load_records(synthetic_records(5).to_csv(index=False).encode()), "3 rows"),
    ("records rows (table)", [(io_records, "MAX_ROWS", 3)], lambda: load_records(synthetic_records(5)), "limit is 3"),
    ("records columns", [(io_records, "MAX_COLUMNS", 10)],
     lambda: load_records(synthetic_records(2).to_csv(index=False).encode()), "limit is 10"),
    ("note characters", [(io_notes, "MAX_NOTE_CHARS", 50)], lambda: load_notes(b"word " * 40, "a.txt"), "limit is 50"),
    ("note file bytes", [(io_notes, "MAX_FILE_BYTES", 100)], lambda: load_notes(b"word " * 40, "a.txt"), "limit"),
    ("notes per CSV", [(io_notes, "MAX_NOTES", 2)],
     lambda: load_notes(b"text\none\ntwo\nthree\n", "n.csv"), "limit is 2"),
    ("series bytes", [(io_vitals, "MAX_BYTES", 50)], lambda: load_series(_long_series(5), ICU_SERIES), "limit"),
    ("series rows", [(io_vitals, "MAX_ROWS", 4)], lambda: load_series(_long_series(6), ICU_SERIES), "4 rows"),
    ("series steps", [(io_vitals, "MAX_STEPS", 10)], lambda: load_series(_hhmm_series(30), ICU_SERIES), "limit is 10"),
]


@pytest.mark.parametrize("name,patches,call,words", CASES, ids=[c[0] for c in CASES])
def test_resource_limit(monkeypatch, name, patches, call, words):
    for module, attr, value in patches:
        monkeypatch.setattr(module, attr, value)
    with pytest.raises(TooLarge) as err:
        call()
    assert words in str(err.value), str(err.value)


def test_shipped_limits_are_consistent():
    """The core's scan limit matches the server's upload limit; the others fit in this machine's memory."""
    import tomllib

    from tests.conftest import ROOT

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert io_scan.MAX_BYTES == cfg["server"]["maxUploadSize"] * 2**20
    assert io_scan.MAX_TOTAL_PIXELS * 4 <= 2 * 2**30  # float32 copy of the largest scan under 2 GB
    assert io_records.MAX_ROWS * io_records.MAX_COLUMNS <= 1e8
    assert io_vitals.MAX_STEPS >= 24 * 60 // 5 and io_notes.MAX_NOTE_CHARS >= 100_000
