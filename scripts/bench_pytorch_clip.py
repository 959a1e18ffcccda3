#!/usr/bin/env python3
"""PyTorch peer for `cargo bench -p server --bench clip`: times transformers'
CLIPModel.get_image_features on the model folder the bench wrote (same weights, same input
sizes) and prints JSON {"batch": [seconds per call, ...]} on stdout.

    python3 scripts/bench_pytorch_clip.py MODEL_DIR --batches 1,8,32 --reps 10,5,3 --threads 2

The bench runs it itself when CLIP_BENCH_PYTHON (or python3) can import torch and transformers.
"""
import argparse
import json
import sys
import time

import torch
from transformers import CLIPModel


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--reps", default="10,5,3")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, info = CLIPModel.from_pretrained(args.model, output_loading_info=True)
    # Every weight must come from the file: a randomly initialised one would time another model.
    missing = [k for k in info["missing_keys"] if not k.endswith("position_ids") and k != "logit_scale"]
    if missing:
        sys.exit(f"weights missing from {args.model}: {missing[:5]}")
    model.eval()
    size = model.config.vision_config.image_size
    results = {"torch": torch.__version__, "threads": torch.get_num_threads(), "times": {}}
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for batch, reps in zip(map(int, args.batches.split(",")), map(int, args.reps.split(","))):
            pixels = torch.randn(batch, 3, size, size, generator=generator)
            model.get_image_features(pixel_values=pixels)  # warm-up
            times = []
            for _ in range(reps):
                started = time.perf_counter()
                model.get_image_features(pixel_values=pixels)
                times.append(time.perf_counter() - started)
            results["times"][str(batch)] = times
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
