#!/usr/bin/env python3
"""The peer of `cargo bench -p server --bench explain`: one heatmap (gradient-weighted attention
relevance, from the last layer) with PyTorch + transformers, eager attention and autograd, the
same method as scripts/make_relevance_goldens.py, on a model folder the bench writes (random
weights at a real architecture). Prints JSON: {"torch": version, "ms": [per run]}.

    python3 scripts/bench_relevance_torch.py FOLDER RUNS THREADS
"""

import importlib.util
import json
import pathlib
import sys
import time

import torch
from transformers import AutoModel

here = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("goldens", here / "make_relevance_goldens.py")
goldens = importlib.util.module_from_spec(spec)
spec.loader.exec_module(goldens)


def main():
    folder, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    siglip = "siglip" in model.config.model_type
    size = model.config.vision_config.image_size
    layers = model.config.vision_config.num_hidden_layers
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(1, 3, size, size, generator=generator)
    dim = model.config.vision_config.hidden_size if siglip else model.config.projection_dim
    text = torch.randn(1, dim, generator=generator)
    text = text / text.norm()
    goldens.relevance(model, siglip, pixels, text, layers - 1)  # warm-up
    ms = []
    for _ in range(runs):
        started = time.perf_counter()
        goldens.relevance(model, siglip, pixels, text, layers - 1)
        ms.append((time.perf_counter() - started) * 1000)
    print(json.dumps({"torch": torch.__version__, "ms": ms}))


if __name__ == "__main__":
    main()
