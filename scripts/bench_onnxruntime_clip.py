#!/usr/bin/env python3
"""ONNX Runtime peer for `cargo bench -p server --bench clip` and `--bench families`: exports
the image tower of the model folder the bench wrote (transformers' CLIPVisionModelWithProjection,
SiglipVisionModel with its pooling head for `model_type: siglip`, Siglip2VisionModel for
`siglip2` (NaFlex: 256 patch rows, a 720p frame's 12x21 grid valid, as its processor pads), or
open_clip's image tower for a folder in open_clip's layout; same weights) with
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


# NaFlex: a 1280x720 frame at 256 patches of 16 is a 12x21 grid (Siglip2ImageProcessor).
NAFLEX_ROWS, NAFLEX_GRID = 256, (12, 21)


def export_open_clip(model_dir, path):
    import open_clip
    import torch

    model = open_clip.create_model("local-dir:" + model_dir).eval()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    dummy = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        torch.onnx.export(
            model.visual, (dummy,), path, input_names=["pixel_values"],
            output_names=["image_embeds"], opset_version=17, dynamo=False,
            dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
        )


def export_naflex(model_dir, path):
    import torch
    from transformers import Siglip2VisionModel

    model = Siglip2VisionModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    p = model.config.patch_size
    valid = NAFLEX_GRID[0] * NAFLEX_GRID[1]
    pixels = torch.randn(2, NAFLEX_ROWS, 3 * p * p)
    mask = torch.zeros(2, NAFLEX_ROWS, dtype=torch.int32)
    mask[:, :valid] = 1
    shapes = torch.tensor([NAFLEX_GRID] * 2, dtype=torch.int64)

    class ImageEmbeds(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values, pixel_attention_mask, spatial_shapes):
            return self.inner(pixel_values=pixel_values, pixel_attention_mask=pixel_attention_mask,
                              spatial_shapes=spatial_shapes).pooler_output

    names = ["pixel_values", "pixel_attention_mask", "spatial_shapes"]
    with torch.inference_mode():
        torch.onnx.export(
            ImageEmbeds(model), (pixels, mask, shapes), path, input_names=names,
            output_names=["image_embeds"], opset_version=17, dynamo=False,
            dynamic_axes={**{n: {0: "batch"} for n in names}, "image_embeds": {0: "batch"}},
        )


def export(model_dir, path):
    import torch
    from transformers import CLIPVisionModelWithProjection, SiglipVisionModel

    if os.path.exists(os.path.join(model_dir, "open_clip_config.json")):
        return export_open_clip(model_dir, path)
    with open(os.path.join(model_dir, "config.json")) as f:
        model_type = json.load(f).get("model_type")
    if model_type == "siglip2":
        return export_naflex(model_dir, path)
    siglip = model_type == "siglip"
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
    if not os.path.exists(weights):
        weights = os.path.join(args.model, "open_clip_model.safetensors")
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(weights):
        export(args.model, path)

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    results = {"onnxruntime": ort.__version__, "threads": args.threads, "times": {}}
    rng = np.random.default_rng(0)

    def feed(batch):
        shape = session.get_inputs()[0].shape
        if "pixel_attention_mask" not in inputs:
            size = shape[2]
            return {"pixel_values": rng.standard_normal((batch, 3, size, size), dtype=np.float32)}
        mask = np.zeros((batch, NAFLEX_ROWS), dtype=np.int32)
        mask[:, :NAFLEX_GRID[0] * NAFLEX_GRID[1]] = 1
        return {
            "pixel_values": rng.standard_normal((batch, NAFLEX_ROWS, shape[2]), dtype=np.float32),
            "pixel_attention_mask": mask,
            "spatial_shapes": np.array([NAFLEX_GRID] * batch, dtype=np.int64),
        }

    for batch, reps in zip(map(int, args.batches.split(",")), map(int, args.reps.split(","))):
        inputs_now = feed(batch)
        session.run(None, inputs_now)  # warm-up
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            session.run(None, inputs_now)
            times.append(time.perf_counter() - started)
        results["times"][str(batch)] = times
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
