#!/usr/bin/env python3
"""ONNX Runtime peer for `cargo bench -p server --bench clip` and `--bench families`: exports
the image tower of the model folder the bench wrote (transformers' CLIPVisionModelWithProjection,
or SiglipVisionModel with its pooling head for `model_type: siglip`; same weights) with
torch.onnx.export, the usual way to run these models on ONNX Runtime, then times the
`onnxruntime` package's InferenceSession on it and prints JSON like bench_pytorch_clip.py.

    python3 scripts/bench_onnxruntime_clip.py MODEL_DIR --batches 1,8,32 --reps 10,5,3 --threads 2

The export is kept as MODEL_DIR/peer-vision.onnx (+ .data) and reused while it is newer than
the weights. Needs torch, transformers, onnx and onnxruntime.
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def export(model_dir, path):
    import torch
    from transformers import CLIPVisionModelWithProjection, SiglipVisionModel

    with open(os.path.join(model_dir, "config.json")) as f:
        siglip = json.load(f).get("model_type") == "siglip"
    kind = SiglipVisionModel if siglip else CLIPVisionModelWithProjection
    model = kind.from_pretrained(model_dir).eval()
    size = model.config.image_size

    class ImageEmbeds(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values):
            out = self.inner(pixel_values=pixel_values)
            return out.pooler_output if siglip else out.image_embeds

    dummy = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        torch.onnx.export(
            ImageEmbeds(model), (dummy,), path, input_names=["pixel_values"],
            output_names=["image_embeds"], opset_version=17, dynamo=False,
            dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--reps", default="10,5,3")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    path = os.path.join(args.model, "peer-vision.onnx")
    weights = os.path.join(args.model, "model.safetensors")
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(weights):
        export(args.model, path)

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    size = session.get_inputs()[0].shape[2]
    results = {"onnxruntime": ort.__version__, "threads": args.threads, "times": {}}
    rng = np.random.default_rng(0)
    for batch, reps in zip(map(int, args.batches.split(",")), map(int, args.reps.split(","))):
        pixels = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
        session.run(None, {"pixel_values": pixels})  # warm-up
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            session.run(None, {"pixel_values": pixels})
            times.append(time.perf_counter() - started)
        results["times"][str(batch)] = times
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
