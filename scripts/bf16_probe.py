#!/usr/bin/env python3
"""Does ONNX Runtime's CPU execution provider have bf16 kernels for the image tower's matrix
products? Builds one-node models (MatMul, Gemm, and com.microsoft's FusedMatMul) on bfloat16
inputs and asks an InferenceSession to load each; prints what it answers. The engine's bf16
refusal (engine/src/precision.rs) cites this.

    python3 scripts/bf16_probe.py      # needs onnx and onnxruntime
"""
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper


def probe(op, domain=""):
    inputs = [helper.make_tensor_value_info(n, TensorProto.BFLOAT16, [4, 4]) for n in "AB"]
    output = helper.make_tensor_value_info("Y", TensorProto.BFLOAT16, [4, 4])
    node = helper.make_node(op, ["A", "B"], ["Y"], domain=domain)
    imports = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph([node], "probe", inputs, [output]),
                              opset_imports=imports)
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return "loads"
    except Exception as e:  # noqa: BLE001 - the message is the finding
        return str(e).splitlines()[0][:200]


print("onnxruntime", ort.__version__, ort.get_device())
for op, domain in [("MatMul", ""), ("Gemm", ""), ("FusedMatMul", "com.microsoft")]:
    print(f"{op} bfloat16: {probe(op, domain)}")
