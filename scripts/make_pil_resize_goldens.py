#!/usr/bin/env python3
"""Writes server/tests/fixtures/pil_resize.json: Pillow's bicubic resize of a small RGB image to
several sizes (down, up, one axis only), the reference that server/src/embed/preprocess.rs
must reproduce byte for byte (transformers' CLIPImageProcessor resizes through Pillow).

    pip install pillow numpy && python3 scripts/make_pil_resize_goldens.py
"""
import base64
import json
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

rng = np.random.default_rng(7)
# Smooth gradients plus noise and a hard edge: exercises negative lobes and clipping.
w, h = 64, 40
yy, xx = np.mgrid[0:h, 0:w]
base = np.stack([xx * 4, yy * 6, (xx + yy) * 2], axis=-1).astype(np.float64)
base += rng.normal(0, 25, size=base.shape)
base[:, w // 2 :, 0] = 255
pixels = np.clip(base, 0, 255).astype(np.uint8)
image = Image.fromarray(pixels, "RGB")

cases = []
for size in [(32, 20), (17, 11), (56, 32), (100, 63), (64, 13), (23, 40), (7, 5)]:
    out = np.asarray(image.resize(size, resample=Image.BICUBIC, reducing_gap=None))
    cases.append({"width": size[0], "height": size[1], "rgb": base64.b64encode(out.tobytes()).decode()})

fixture = {
    "pillow": PIL.__version__,
    "input": {"width": w, "height": h, "rgb": base64.b64encode(pixels.tobytes()).decode()},
    "resized": cases,
}
out = Path(__file__).resolve().parent.parent / "server" / "tests" / "fixtures" / "pil_resize.json"
out.write_text(json.dumps(fixture, indent=1) + "\n")
print(f"wrote {out} (Pillow {PIL.__version__})")
