#!/usr/bin/env python3
"""Goldens for the int8 image graph (server/tests/it/precision.rs): ONNX Runtime's own
quantizer on the same tower, so that the graph our writer emits from the safetensors can be
held against it.

For each tiny fixture (tiny-clip, tiny-siglip): the image tower exported with torch.onnx.export
(scripts/bench_onnxruntime_clip.py's export), quantized with
`onnxruntime.quantization.quantize_dynamic(per_channel=True, weight_type=QInt8)` restricted to
the layers our int8 graph computes in int8 (every encoder layer's q/k/v/out projections and
MLP fc1/fc2: the MatMuls with a weight; attention's two products, the patch embedding, SigLIP's
pooling head and CLIP's projection stay fp32), then run by onnxruntime's InferenceSession on the
goldens' pixel values. Writes tests/fixtures/NAME/int8.json: the L2-normalised embeddings.

    python3 scripts/make_int8_goldens.py          # needs torch, transformers, onnx, onnxruntime
"""
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_onnxruntime_clip import export  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "server", "tests", "fixtures")
INT8_LAYERS = ("/self_attn/q_proj/", "/self_attn/k_proj/", "/self_attn/v_proj/",
               "/self_attn/out_proj/", "/mlp/fc1/", "/mlp/fc2/")


def main():
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in ["tiny-clip", "tiny-siglip"]:
        folder = os.path.join(FIXTURES, name)
        goldens = json.load(open(os.path.join(folder, "goldens.json")))
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = os.path.join(tmp, "vision.onnx")
            int8 = os.path.join(tmp, "vision-int8.onnx")
            export(folder, fp32)
            graph = onnx.load(fp32).graph
            weights = {i.name for i in graph.initializer}
            nodes = [n.name for n in graph.node
                     if n.op_type == "MatMul" and n.input[1] in weights
                     and "/encoder/layers." in n.name and any(l in n.name for l in INT8_LAYERS)]
            quantize_dynamic(fp32, int8, per_channel=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"], nodes_to_quantize=nodes)
            session = ort.InferenceSession(int8, providers=["CPUExecutionProvider"])
            size = session.get_inputs()[0].shape[2]
            frames = []
            for frame in goldens["frames"]:
                pixels = np.array(frame["pixel_values"], dtype=np.float32).reshape(1, 3, size, size)
                out = session.run(None, {"pixel_values": pixels})[0][0]
                out = out / np.linalg.norm(out)
                frames.append({"file": frame["file"], "embedding_normalized": out.tolist()})
        result = {
            "about": "ONNX Runtime's quantize_dynamic (per-channel QInt8 weights, dynamic uint8 "
                     "activations) of the torch-exported image tower, restricted to the encoder "
                     "layers' q/k/v/out/fc1/fc2 MatMuls; made by scripts/make_int8_goldens.py",
            "quantized_nodes": len(nodes),
            "versions": {"onnxruntime": ort.__version__, "onnx": onnx.__version__},
            "frames": frames,
        }
        with open(os.path.join(folder, "int8.json"), "w") as f:
            json.dump(result, f, indent=1)
        print(name, len(nodes), "MatMuls quantized")


if __name__ == "__main__":
    main()
