#!/usr/bin/env python3
"""Random-weight models at the real shapes for `cargo bench -p server --bench families`, in the
layouts the app reads (speed does not depend on the weights' values):

    python3 scripts/make_bench_models.py pe-core-b16 OUT_DIR    # open_clip's layout, PE-Core-B-16
    python3 scripts/make_bench_models.py naflex-b16 OUT_DIR     # SigLIP 2 NaFlex B/16, 256 patches

PE-Core-B-16 is open_clip's own config (timm's vit_pe_core_base_patch16_224 + its text tower),
written as open_clip's hub layout (open_clip_config.json, open_clip_model.safetensors).
NaFlex is transformers' Siglip2Config defaults (google/siglip2-base-patch16-naflex's shapes:
768 wide, 12 layers, a 16x16 position grid, 256 patches of 16), with the tiny fixture's
tokenizer (its 1000 tokens fit the model's 32000). Needs torch, open_clip_torch, timm,
transformers, safetensors.
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent


def pe_core(out):
    import open_clip
    from open_clip.factory import get_model_config

    torch.manual_seed(0)
    model = open_clip.create_model("PE-Core-B-16")
    config = {
        "model_cfg": get_model_config("PE-Core-B-16"),
        "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear",
                           "resize_mode": "squash"},
    }
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, out / "open_clip_model.safetensors")


def naflex(out):
    from transformers import Siglip2Config, Siglip2Model

    torch.manual_seed(0)
    config = Siglip2Config()
    model = Siglip2Model(config)
    model.save_pretrained(out, safe_serialization=True)
    fixture = ROOT / "server/tests/fixtures/tiny-siglip2-naflex"
    for name in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(fixture / name, out / name)
    processor = json.loads((fixture / "preprocessor_config.json").read_text())
    processor.update(patch_size=16, max_num_patches=256)
    (out / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))


def main():
    kind, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    {"pe-core-b16": pe_core, "naflex-b16": naflex}[kind](out)


if __name__ == "__main__":
    main()
