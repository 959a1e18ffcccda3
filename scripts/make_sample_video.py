#!/usr/bin/env python3
"""Makes data/sample.mp4: a slideshow with slow pans over openly licensed photographs that ship
with scikit-image (licences in data/README.md), so that with real CLIP weights the demo curves
mean something.

    pip install scikit-image numpy   # plus the ffmpeg command (apt-get install ffmpeg)
    python3 scripts/make_sample_video.py
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
from skimage import data
from skimage.color import gray2rgb
from skimage.transform import AffineTransform, warp

WIDTH, HEIGHT, FPS = 960, 540, 30
SHOW = 90  # frames each photo is on screen, fades included (3 s)
FADE = 15  # cross-fade frames (0.5 s)
CRF = 24
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "brick", "grass"]
OUT = Path(__file__).resolve().parent.parent / "data" / "sample.mp4"


def load(name):
    image = getattr(data, name)()
    if image.ndim == 2:
        image = gray2rgb(image)
    return image[..., :3].astype(np.float32) / 255.0


def ken_burns(image, progress, index):
    """The 16:9 view of `image` at `progress` (0..1): a slow zoom-in with a drift whose
    direction alternates from photo to photo."""
    h, w = image.shape[:2]
    # Largest 16:9 window that fits, then zoom from 100% to 85% of it.
    base_w = min(w, h * WIDTH / HEIGHT)
    view_w = base_w * (1.0 - 0.15 * progress)
    view_h = view_w * HEIGHT / WIDTH
    slack_x, slack_y = w - view_w, h - view_h
    direction = 1 if index % 2 == 0 else -1
    x0 = slack_x * (0.5 + direction * 0.4 * (progress - 0.5))
    y0 = slack_y * (0.5 - direction * 0.3 * (progress - 0.5))
    scale = view_w / WIDTH
    # Maps output pixel (col, row) to input pixel coordinates.
    transform = AffineTransform(scale=(scale, scale), translation=(x0, y0))
    return warp(image, transform, output_shape=(HEIGHT, WIDTH), order=1, mode="edge")


def main():
    photos = [load(name) for name in PHOTOS]
    step = SHOW - FADE
    total = step * len(photos) + FADE
    OUT.parent.mkdir(exist_ok=True)
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-",
         "-c:v", "libx264", "-preset", "slow", "-crf", str(CRF), "-pix_fmt", "yuv420p",
         "-g", "60", "-movflags", "+faststart", str(OUT)],
        stdin=subprocess.PIPE,
    )
    for t in range(total):
        frame = np.zeros((HEIGHT, WIDTH, 3), np.float32)
        weight = 0.0
        for i, photo in enumerate(photos):
            local = t - i * step
            if not 0 <= local < SHOW:
                continue
            alpha = 1.0
            if local < FADE and i > 0:
                alpha = local / FADE
            if local >= SHOW - FADE and i < len(photos) - 1:
                alpha = (SHOW - local) / FADE
            frame += alpha * ken_burns(photo, local / (SHOW - 1), i)
            weight += alpha
        frame /= max(weight, 1e-6)
        ffmpeg.stdin.write((np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8).tobytes())
    ffmpeg.stdin.close()
    if ffmpeg.wait() != 0:
        sys.exit("ffmpeg failed")
    print(f"{OUT}: {OUT.stat().st_size / 1e6:.2f} MB, {total} frames, {total / FPS:.1f} s at {FPS} fps")
    for i, name in enumerate(PHOTOS):
        start = i * step
        print(f"  {name}: frames {start}-{start + SHOW - 1} ({start / FPS:.1f}-{(start + SHOW) / FPS:.1f} s)")


if __name__ == "__main__":
    main()
