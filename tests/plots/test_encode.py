"""plots.encode: lossless PNGs of grey and RGB images, fast for the browser or small for reports, with no
heavy imports."""
from __future__ import annotations

import base64
import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medai_core.plots.encode import png_bytes, png_data_uri, to_uint8


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_to_uint8_rounds_and_clips_floats_and_keeps_uint8():
    out = to_uint8(np.array([[-0.5, 0.0, 0.5, 1.0, 2.0]]))
    assert out.dtype == np.uint8 and out.tolist() == [[0, 0, 128, 255, 255]]
    u8 = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert to_uint8(u8) is u8


@pytest.mark.parametrize("shape", [(7, 5), (7, 5, 3)])
@pytest.mark.parametrize("fast", [True, False])
def test_png_is_lossless_for_grey_and_rgb(shape, fast):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    png = png_bytes(img, fast=fast)
    assert png.startswith(b"\x89PNG") and np.array_equal(_pixels(png), img)


def test_fast_and_small_encode_the_same_pixels_and_small_is_not_larger():
    img = (np.add.outer(np.arange(64), np.arange(64)) % 256).astype(np.uint8)
    fast, small = png_bytes(img), png_bytes(img, fast=False)
    assert np.array_equal(_pixels(fast), _pixels(small)) and len(small) <= len(fast)


def test_data_uri_decodes_to_the_image():
    img = np.linspace(0, 1, 30).reshape(5, 6)
    uri = png_data_uri(img)
    assert uri.startswith("data:image/png;base64,")
    assert np.array_equal(_pixels(base64.b64decode(uri.split(",", 1)[1])), to_uint8(img))


def test_importing_it_loads_neither_torch_nor_plotting_libraries():
    code = ("import sys, medai_core.plots.encode; "
            "print(sorted(m for m in ('torch', 'plotly', 'matplotlib', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
