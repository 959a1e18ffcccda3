#!/usr/bin/env python3
"""Checks how FFmpeg's swscale turns odd-height yuv420p video into RGB, and shows that the PNG
path (rgb24) and the raw bgr24 path do not give the same pixels.

What it does: for a few lavfi test patterns it encodes 720xH MPEG-2 program streams (.mpg,
yuv420p, limited range; H odd and even), then decodes each one three ways with the ffmpeg CLI

    ffmpeg -i V.mpg -fps_mode passthrough D/%d.png                        (rgb24, as PNG)
    ffmpeg -i V.mpg -fps_mode passthrough -pix_fmt bgr24   -f rawvideo V.bgr
    ffmpeg -i V.mpg -fps_mode passthrough -pix_fmt yuv420p -f rawvideo V.yuv   (decoder's planes)

(the PNGs are read back with `ffmpeg -i D/%d.png -f rawvideo -pix_fmt rgb24`, and the script
checks that this equals a direct `-pix_fmt rgb24 -f rawvideo` decode, so no PIL is needed and
the PNG step is shown to be lossless). It then prints, per video:

  * rgb24 vs bgr24 (channels swapped): max and mean |diff| over all samples, the mean |diff|
    over the samples that differ, how many of the H rows differ in any frame, and the signed
    mean (rgb24 - bgr24) per channel;
  * each of rgb24 and bgr24 against an exact floating-point BT.601 limited-range conversion of
    the decoded Y/Cb/Cr planes: signed mean error (bias) per channel R/G/B and mean |error|,
    with the chroma upsampled two ways: "nearest" (each chroma sample replicated over its 2x2
    luma block) and "bilinear" (chroma sited at the centre of its 2x2 block, as swscale assumes
    by default, bilinear, edges clamped);
  * which swscale path each conversion took, from a separate `-sws_flags bicubic+print_info`
    run ("special" = the unscaled yuv2rgb special converter, "generic" = the scaler).
    bicubic is the ffmpeg CLI's default, so this names the path the real commands used;
  * whether bgr24 decoded with `-cpuflags 0` (swscale's C code only) equals rgb24.

Why (FFmpeg 5.1, x86-64): the unscaled yuv420p->RGB special converter is only taken when the
output height is even (libswscale/swscale_unscaled.c: `... && !(dstH & 1)`), so odd heights go
through the generic scaler (bicubic vertical chroma upsampling 203 -> 405 rows). There the
x86 MMXEXT code has a vertical-filter + packed-output routine for BGR24 (yuv2bgr24_X in
libswscale/x86/swscale_template.c) but none for RGB24, which uses the C table-based output.
The last two rows always use the C routines (swscale.c: `if (dstY >= dstH - 2)`), which is why
those two rows agree. With -cpuflags 0 the two outputs are identical.

Needs the ffmpeg/ffprobe commands (5.1 was used when this was written) and numpy
(pip install numpy). Nothing in the build or CI needs it; it is a record of a measurement.

    python3 scripts/odd_height_pixels.py                 # 405 (odd) vs 404 and 406 (even)
    python3 scripts/odd_height_pixels.py --heights 405 403 --frames 25 --keep /tmp/ohp
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WIDTH = 720
# Each source is rendered at an even height, in rgb24, then cropped to the height wanted (lavfi
# sources rounded an odd yuv420p size down to even when asked for it directly).
SOURCES = {
    "testsrc2": "testsrc2=size={w}x{h2}:rate=25",
    "smptehdbars": "smptehdbars=size={w}x{h2}:rate=25",
    "mandelbrot": "mandelbrot=size={w}x{h2}:rate=25",
    # Something less flat: a moving pattern blended with a fractal, plus temporal noise.
    "blend+noise": (
        "testsrc2=size={w}x{h2}:rate=25,format=gbrp[a];"
        "mandelbrot=size={w}x{h2}:rate=25,format=gbrp[b];"
        "[a][b]blend=all_mode=average,noise=alls=12:allf=t"
    ),
}

# BT.601: Kr, Kb; limited range Y' 16..235, Cb/Cr 16..240.
KR, KB = 0.299, 0.114
KG = 1.0 - KR - KB
YS, CS = 255.0 / 219.0, 255.0 / 224.0


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def ffmpeg(*args):
    return run(["ffmpeg", "-hide_banner", "-nostdin", "-y", "-v", "error", *args])


def make_video(path, source, height, frames):
    h2 = height + (height & 1)
    graph = SOURCES[source].format(w=WIDTH, h2=h2)
    graph += f",format=rgb24,crop={WIDTH}:{height}:0:0"
    ffmpeg("-f", "lavfi", "-i", graph, "-frames:v", str(frames), "-c:v", "mpeg2video",
           "-q:v", "2", "-pix_fmt", "yuv420p", "-f", "mpeg", str(path))
    probe = run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                 "stream=width,height,pix_fmt,color_range", "-of", "csv=p=0", str(path)])
    got = probe.stdout.strip()
    w, h, pix_fmt = got.split(",")[:3]
    if (int(w), int(h), pix_fmt) != (WIDTH, height, "yuv420p"):
        sys.exit(f"{path}: expected {WIDTH}x{height} yuv420p, ffprobe says {got}")
    return got


def extract(video, work, height, frames):
    """Returns rgb24 (via PNG), bgr24 (as RGB order), Y, Cb, Cr arrays, all [N, ...]."""
    png_dir = work / "png"
    png_dir.mkdir()
    ffmpeg("-i", str(video), "-fps_mode", "passthrough", str(png_dir / "%d.png"))
    pngs = sorted(png_dir.glob("*.png"), key=lambda p: int(p.stem))
    png_fmt = run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                   "stream=pix_fmt", "-of", "csv=p=0", str(pngs[0])]).stdout.strip()
    if png_fmt != "rgb24":
        sys.exit(f"PNG pixel format is {png_fmt}, expected rgb24")
    ffmpeg("-i", str(png_dir / "%d.png"), "-f", "rawvideo", "-pix_fmt", "rgb24",
           str(work / "png.rgb"))
    ffmpeg("-i", str(video), "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo",
           str(work / "direct.rgb"))
    ffmpeg("-i", str(video), "-fps_mode", "passthrough", "-pix_fmt", "bgr24", "-f", "rawvideo",
           str(work / "out.bgr"))
    ffmpeg("-i", str(video), "-fps_mode", "passthrough", "-pix_fmt", "yuv420p", "-f", "rawvideo",
           str(work / "out.yuv"))

    def load(name, shape):
        data = np.fromfile(work / name, np.uint8)
        n = data.size // int(np.prod(shape))
        if n != frames or data.size != n * int(np.prod(shape)):
            sys.exit(f"{name}: {data.size} bytes is not {frames} frames of {shape}")
        return data.reshape(n, *shape)

    rgb = load("png.rgb", (height, WIDTH, 3))
    direct = load("direct.rgb", (height, WIDTH, 3))
    png_lossless = bool(np.array_equal(rgb, direct))
    bgr = load("out.bgr", (height, WIDTH, 3))[..., ::-1]
    # The same bgr24 decode with swscale's SIMD code switched off (-cpuflags 0).
    ffmpeg("-cpuflags", "0", "-i", str(video), "-fps_mode", "passthrough", "-pix_fmt", "bgr24",
           "-f", "rawvideo", str(work / "c_only.bgr"))
    bgr_c_only = load("c_only.bgr", (height, WIDTH, 3))[..., ::-1]
    c_only_same = bool(np.array_equal(bgr_c_only, rgb))
    cw, ch = (WIDTH + 1) // 2, (height + 1) // 2
    yuv = load("out.yuv", (WIDTH * height + 2 * cw * ch,))
    y = yuv[:, : WIDTH * height].reshape(-1, height, WIDTH)
    cb = yuv[:, WIDTH * height: WIDTH * height + cw * ch].reshape(-1, ch, cw)
    cr = yuv[:, WIDTH * height + cw * ch:].reshape(-1, ch, cw)
    return rgb, bgr, y, cb, cr, png_lossless, c_only_same


def sws_path(video, pix_fmt):
    """Which swscale path converts this video to pix_fmt with the CLI's default (bicubic)."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "verbose", "-i", str(video), "-frames:v", "1",
         "-sws_flags", "bicubic+print_info", "-pix_fmt", pix_fmt, "-f", "null", "-"],
        capture_output=True, text=True, check=True).stderr
    if "special converter" in out:
        return "special"
    return "generic" if "scaler, from" in out else "?"


def upsample_nearest(c, height, width):
    return np.repeat(np.repeat(c, 2, axis=-2), 2, axis=-1)[..., :height, :width].astype(np.float64)


def upsample_bilinear(c, height, width):
    """Chroma sample k sits at luma coordinate 2k + 0.5 on both axes (centred); clamp at edges."""
    c = c.astype(np.float64)

    def axis_weights(n_luma, n_chroma):
        pos = (np.arange(n_luma) - 0.5) / 2.0
        lo = np.floor(pos).astype(int)
        frac = pos - lo
        return np.clip(lo, 0, n_chroma - 1), np.clip(lo + 1, 0, n_chroma - 1), frac

    y0, y1, fy = axis_weights(height, c.shape[-2])
    x0, x1, fx = axis_weights(width, c.shape[-1])
    rows = c[..., y0, :] * (1 - fy)[:, None] + c[..., y1, :] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def bt601_limited(y, cb, cr):
    yy = (y.astype(np.float64) - 16.0) * YS
    u = (cb - 128.0) * CS
    v = (cr - 128.0) * CS
    r = yy + 2.0 * (1.0 - KR) * v
    g = yy - (2.0 * KB * (1.0 - KB) / KG) * u - (2.0 * KR * (1.0 - KR) / KG) * v
    b = yy + 2.0 * (1.0 - KB) * u
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 255.0)


def measure(source, height, frames, work):
    video = work / f"{source}_{height}.mpg".replace("+", "_")
    info = make_video(video, source, height, frames)
    rgb, bgr, y, cb, cr, png_lossless, c_only_same = extract(video, work, height, frames)
    diff = rgb.astype(np.int16) - bgr.astype(np.int16)
    nonzero = diff[diff != 0]
    row = {
        "source": source,
        "H": height,
        "probe": info,
        "png_lossless": png_lossless,
        "c_only_same": c_only_same,
        "path_rgb24": sws_path(video, "rgb24"),
        "path_bgr24": sws_path(video, "bgr24"),
        "max": int(np.abs(diff).max()),
        "mean": float(np.abs(diff).mean()),
        "mean_nz": float(np.abs(nonzero).mean()) if nonzero.size else 0.0,
        "rows": int(np.any(diff != 0, axis=(0, 2, 3)).sum()),
        "same_rows": [int(i) for i in np.flatnonzero(~np.any(diff != 0, axis=(0, 2, 3)))],
        "signed": diff.mean(axis=(0, 1, 2)),
        "ref": {},
    }
    for name, up in (("nearest", upsample_nearest), ("bilinear", upsample_bilinear)):
        ref = bt601_limited(y, up(cb, height, WIDTH), up(cr, height, WIDTH))
        for label, img in (("rgb24", rgb), ("bgr24", bgr)):
            err = img.astype(np.float64) - ref
            row["ref"][(name, label)] = (err.mean(axis=(0, 1, 2)), float(np.abs(err).mean()))
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heights", type=int, nargs="+", default=[405, 404, 406])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    args = parser.parse_args()
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found")
    version = run(["ffmpeg", "-version"]).stdout.splitlines()[0]
    print(version)
    print(f"{WIDTH}xH MPEG-2 PS (yuv420p), {args.frames} frames each; "
          "sws flags: CLI default (bicubic)\n")

    root = args.keep or Path(tempfile.mkdtemp(prefix="odd_height_"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for source in args.sources:
            for height in args.heights:
                work = root / f"{source}_{height}".replace("+", "_")
                if work.exists():
                    shutil.rmtree(work)
                work.mkdir()
                rows.append(measure(source, height, args.frames, work))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    print("rgb24 (PNG path) vs bgr24 (rawvideo), signed mean = rgb24 - bgr24")
    print(f"{'source':<12} {'H':>4} {'path rgb/bgr':<16} {'max':>3} {'mean':>6} {'mean!=0':>7} "
          f"{'rows':>9} {'signed R':>8} {'G':>6} {'B':>6}  png==raw  C-only==  identical rows")
    for r in rows:
        s = r["signed"]
        same = r["same_rows"]
        same_txt = ",".join(map(str, same)) if len(same) <= 4 else f"{len(same)} rows"
        print(f"{r['source']:<12} {r['H']:>4} {r['path_rgb24'] + '/' + r['path_bgr24']:<16} "
              f"{r['max']:>3} {r['mean']:>6.3f} {r['mean_nz']:>7.3f} "
              f"{r['rows']:>4}/{r['H']:<4} {s[0]:>+8.3f} {s[1]:>+6.3f} {s[2]:>+6.3f}  "
              f"{'yes' if r['png_lossless'] else 'NO':<8}  "
              f"{'yes' if r['c_only_same'] else 'no':<8}  {same_txt}")
    print("png==raw: PNG read back == direct -pix_fmt rgb24 rawvideo; C-only==: bgr24 decoded "
          "with -cpuflags 0 (no SIMD) == rgb24")

    print("\nagainst float BT.601 limited range of the decoded planes: bias R/G/B, mean |err|")
    print(f"{'source':<12} {'H':>4} {'chroma':<9} {'rgb24 bias R':>12} {'G':>6} {'B':>6} "
          f"{'|err|':>6}   {'bgr24 bias R':>12} {'G':>6} {'B':>6} {'|err|':>6}")
    for r in rows:
        for name in ("nearest", "bilinear"):
            (b1, e1), (b2, e2) = r["ref"][(name, "rgb24")], r["ref"][(name, "bgr24")]
            print(f"{r['source']:<12} {r['H']:>4} {name:<9} {b1[0]:>+12.3f} {b1[1]:>+6.3f} "
                  f"{b1[2]:>+6.3f} {e1:>6.3f}   {b2[0]:>+12.3f} {b2[1]:>+6.3f} {b2[2]:>+6.3f} "
                  f"{e2:>6.3f}")


if __name__ == "__main__":
    main()
