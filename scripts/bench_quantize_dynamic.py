#!/usr/bin/env python3
"""The int8 peer for `cargo bench -p server --bench precision`: ONNX Runtime's Python package
quantizing the same exported tower the way its documentation shows for transformers,
`onnxruntime.quantization.quantize_dynamic(per_channel=True, weight_type=QInt8)` with its
defaults for everything else, then timing fp32 and int8 sessions and embedding the bench's
images with both.

    python3 scripts/bench_quantize_dynamic.py MODEL_DIR --pixels FILE --images N \
        --out PREFIX --batches 1,8,32 --reps 5,3,2 --threads 2

MODEL_DIR/peer-vision.onnx is scripts/bench_onnxruntime_clip.py's export (made if missing or
older than the weights); the quantized model is kept beside it as peer-vision-int8.onnx.
FILE holds N preprocessed images (float32, N x 3 x S x S, little-endian). Writes
PREFIX-fp32.f32 and PREFIX-int8.f32 (N x D embeddings, L2-normalised) and prints JSON:
{"onnxruntime", "threads", "fp32": {batch: [seconds]}, "int8": {batch: [seconds]},
"quantize_s"}. Needs torch, transformers, onnx and onnxruntime.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_onnxruntime_clip import export  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--pixels", required=True)
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--reps", default="5,3,2")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32_path = os.path.join(args.model, "peer-vision.onnx")
    int8_path = os.path.join(args.model, "peer-vision-int8.onnx")
    weights = os.path.join(args.model, "model.safetensors")
    if not os.path.exists(fp32_path) or os.path.getmtime(fp32_path) < os.path.getmtime(weights):
        export(args.model, fp32_path)
    started = time.perf_counter()
    if not os.path.exists(int8_path) or os.path.getmtime(int8_path) < os.path.getmtime(fp32_path):
        quantize_dynamic(fp32_path, int8_path, per_channel=True, weight_type=QuantType.QInt8)
    quantize_s = time.perf_counter() - started

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    results = {"onnxruntime": ort.__version__, "threads": args.threads, "quantize_s": quantize_s}
    for name, path in [("fp32", fp32_path), ("int8", int8_path)]:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        size = session.get_inputs()[0].shape[2]
        images = np.fromfile(args.pixels, dtype="<f4").reshape(args.images, 3, size, size)
        vectors = np.concatenate([session.run(None, {"pixel_values": images[i:i + 8]})[0]
                                  for i in range(0, args.images, 8)])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors.astype("<f4").tofile(f"{args.out}-{name}.f32")
        times = {}
        for batch, reps in zip(map(int, args.batches.split(",")), map(int, args.reps.split(","))):
            pixels = np.resize(images, (batch, 3, size, size))
            session.run(None, {"pixel_values": pixels})  # warm-up
            seconds = []
            for _ in range(reps):
                started = time.perf_counter()
                session.run(None, {"pixel_values": pixels})
                seconds.append(time.perf_counter() - started)
            times[str(batch)] = seconds
        results[name] = times
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
