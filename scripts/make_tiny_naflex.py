#!/usr/bin/env python3
"""Writes server/tests/fixtures/tiny-siglip2-naflex/: a tiny SigLIP 2 NaFlex model (transformers'
Siglip2Config / Siglip2Model, model_type "siglip2", like google/siglip2-base-patch16-naflex) with random
weights in Hugging Face layout (config.json, model.safetensors, tokenizer files, preprocessor_config.json),
three PNG frames from data/sample.mp4, five more test images of other shapes (portrait, 4:3, odd, two
one-patch slivers), and goldens.json with what PyTorch + transformers compute for them: the size each
image is resized to, the patchified pixels, pixel_attention_mask and spatial_shapes, the resized position
embeddings, image and text embeddings, token ids, logits and sigmoid probabilities. The Rust
implementation is checked against them.

Run by hand (not in CI); it needs ffmpeg and a virtual environment with, from PyPI:

    python3 -m venv /tmp/ocvenv
    /tmp/ocvenv/bin/pip install torch torchvision transformers safetensors pillow numpy sentencepiece protobuf
    /tmp/ocvenv/bin/python3 scripts/make_tiny_naflex.py

Nothing is downloaded. The tokenizer is the one of ../tiny-siglip2/ (a tiny Gemma-style SentencePiece BPE
model trained here, made by make_siglip2_tokenizer of scripts/make_tiny_siglip.py, which this script
imports); its three files come out byte for byte the same. The model is small: hidden 32, 2 layers, 4 heads,
patch 8, a position-embedding grid of 4x4 (num_patches 16) and max_num_patches 64 in the preprocessor, so
that every image's grid differs from the 4x4 one and the position embeddings are really resized (bigger,
smaller, and 1 patch wide). The weights are random (seed 0), with the biases, the LayerNorms, logit_scale
and logit_bias moved away from their initial values.
"""
import argparse
import hashlib
import importlib.metadata
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import PIL
import sentencepiece as spm
import tokenizers
import torch
import torch.nn.functional as F
import transformers
from PIL import Image
from safetensors import safe_open
from transformers import (AutoImageProcessor, AutoModel, AutoTokenizer, GemmaTokenizer, Siglip2Config, Siglip2Model,
                          Siglip2Processor, SiglipTextConfig, SiglipTextModel, SiglipVisionConfig, SiglipVisionModel)
from transformers.models.siglip2 import image_processing_siglip2 as tv_module
from transformers.models.siglip2 import modeling_siglip2
from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil
from transformers.models.siglip2.image_processing_siglip2 import Siglip2ImageProcessor

sys.dont_write_bytecode = True  # no scripts/__pycache__ from the import below
sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_tiny_siglip as siglip  # noqa: E402  (the tokenizer, the prompts, the frames)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "server" / "tests" / "fixtures"
VIDEO = ROOT / "data" / "sample.mp4"
SEED = 0
CONTEXT = siglip.CONTEXT  # 64: max_position_embeddings, padding="max_length", max_length=64
VOCAB = siglip.VOCAB
PATCH = 8
GRID = 4  # the position-embedding grid: num_patches = GRID * GRID = 16
MAX_PATCHES = 64  # preprocessor_config.json's max_num_patches
OTHER_MAX_PATCHES = (16, 256)  # also golden for the 16:9 frame and the 9:16 image
LOGIT_SCALE = 20.0  # exp(logit_scale); Siglip2Model initialises logit_scale and logit_bias to 0
LOGIT_BIAS = -3.0
POSITION_SCALE = 4.0  # position embeddings x4, so that a wrongly resized one moves the embedding clearly
PROMPTS = siglip.PROMPTS
PIXEL_FLOATS_LIMIT = 3_000  # pixel_values as floats only for entries this small (and the first frame)

# Test images besides the frames: (file, width, height, video frame, ffmpeg filter before the scale).
IMAGES = [
    ("images/portrait_180x320.png", 180, 320, 420, "crop=ih*9/16:ih"),  # 9:16
    ("images/landscape_240x180.png", 240, 180, 420, "crop=ih*4/3:ih"),  # 4:3
    ("images/odd_333x187.png", 333, 187, 420, None),  # odd sizes, neither a multiple of 8
    ("images/sliver_400x3.png", 400, 3, 200, "crop=iw:8:0:ih/2"),  # 1 patch high
    ("images/sliver_3x400.png", 3, 400, 420, "crop=8:ih:iw/2:0"),  # 1 patch wide
]


def f32(values):
    """A tensor or array as a flat list of the shortest decimals that give back the same float32."""
    array = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float32).ravel()
    out = [float(str(v)) for v in array]
    assert np.array_equal(np.asarray(out, dtype=np.float32), array)
    return out


def to_json(value, indent=0):
    """json.dumps(indent=1), but a list of numbers (or of such lists) on one line: the goldens stay small."""
    pad = " " * (indent + 1)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {to_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}" if items else "{}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return "[\n" + ",\n".join(pad + to_json(v, indent + 1) for v in value) + "\n" + " " * indent + "]"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def l2(v):
    return v / v.norm(dim=-1, keepdim=True)


def ffmpeg_frame(n, width, height, path: Path, pre=None):
    chain = f"select=eq(n\\,{n})," + (pre + "," if pre else "") + f"scale={width}:{height}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(VIDEO), "-vf", chain, "-frames:v", "1",
                    "-pix_fmt", "rgb24", str(path)], check=True)
    assert Image.open(path).size == (width, height), path
    assert path.stat().st_size < 150_000, path


def make_model(out: Path):
    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    # As in the real checkpoints (convert_siglip2_to_hf.py), no token ids in text_config: they keep the
    # CLIP-era defaults (pad 1, bos 49406, eos 49407), which the model never uses. The pad id is the tokenizer's (0).
    text = dict(common, vocab_size=VOCAB, max_position_embeddings=CONTEXT, projection_size=32)
    vision = dict(common, num_patches=GRID * GRID, patch_size=PATCH, num_channels=3, vision_use_head=True)
    config = Siglip2Config(text_config=text, vision_config=vision)
    torch.manual_seed(SEED)
    model = Siglip2Model(config).float().eval()
    # The initialisation sets the biases to 0 (or ~1e-6), the LayerNorms to (1, 0) and logit_scale/logit_bias
    # to 0: give them values that a wrong implementation cannot get right by accident.
    gen = torch.Generator().manual_seed(SEED + 1)
    perturbed = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in ("logit_scale", "logit_bias"):
                continue
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
                perturbed.append(name)
            elif ("layer_norm" in name or "layernorm" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
                perturbed.append(name)
        model.vision_model.embeddings.position_embedding.weight.mul_(POSITION_SCALE)
        model.logit_scale.fill_(float(np.log(LOGIT_SCALE)))
        model.logit_bias.fill_(LOGIT_BIAS)
    model.save_pretrained(str(out), safe_serialization=True)
    (out / "model.safetensors").chmod(0o644)  # save_pretrained writes it 0600
    return model, perturbed


def reference_resize(grid: torch.Tensor, height: int, width: int, mode="bilinear", align_corners=False,
                     antialias=True, channels_last=False) -> torch.Tensor:
    """transformers 4.x's resize_positional_embeddings, which the 5.x one re-implements: (G, G, D) ->
    (D, G, G) -> F.interpolate to (height, width) -> (height * width, D), row-major. (On CPU, torch's
    antialiased bilinear gets a width-1 output wrong for a contiguous NCHW input, every row then equal to the
    first one; channels_last memory does not have the bug.)"""
    x = grid.permute(2, 0, 1).unsqueeze(0).float().contiguous()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    kwargs = dict(size=(height, width), mode=mode)
    if mode != "nearest":
        kwargs.update(align_corners=align_corners, antialias=antialias)
    y = F.interpolate(x, **kwargs)
    return y.reshape(grid.shape[-1], height * width).transpose(0, 1)


def triangle_weights(n_out: int, n_in: int) -> np.ndarray:
    """Antialiased bilinear (triangle filter, PIL-style support widening when shrinking), align_corners=False,
    rows normalised to 1: the per-axis weights of the resize, in float64."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centers = (np.arange(n_out) + 0.5) * scale - 0.5
    w = np.clip(1.0 - np.abs(np.arange(n_in)[None, :] - centers[:, None]) / support, 0.0, None)
    return w / w.sum(axis=1, keepdims=True)


def separable_resize(grid: torch.Tensor, height: int, width: int) -> np.ndarray:
    g = grid.double().numpy()
    return np.einsum("ay,bx,yxd->abd", triangle_weights(height, g.shape[0]), triangle_weights(width, g.shape[1]),
                     g).reshape(height * width, g.shape[2])


def own_patches(image: Image.Image, height: int, width: int):
    """What the notes say the processor does, written out: Pillow bilinear resize of the uint8 RGB image,
    patches in row-major order, each flattened as (row in patch, column in patch, channel)."""
    resized = np.asarray(image.resize((width, height), resample=Image.BILINEAR), dtype=np.uint8)  # (H, W, 3)
    gh, gw = height // PATCH, width // PATCH
    u8 = resized.reshape(gh, PATCH, gw, PATCH, 3).transpose(0, 2, 1, 3, 4).reshape(gh * gw, PATCH * PATCH * 3)
    x = (u8.astype(np.float64) * (1 / 255)).astype(np.float32)  # np_rescale: float64 multiply, then float32
    return u8, (x - np.float32(0.5)) / np.float32(0.5)  # np_normalize, in float32


def size_search(height, width, patch, max_patches, eps=1e-5):
    """get_image_size_for_max_num_patches, rewritten from the notes (checked against transformers')."""
    def scaled(scale, size):
        return max(patch, math.ceil(size * scale / patch) * patch)
    lo, hi = eps / 10, 100.0
    while hi - lo >= eps:
        mid = (lo + hi) / 2
        if (scaled(mid, height) / patch) * (scaled(mid, width) / patch) <= max_patches:
            lo = mid
        else:
            hi = mid
    return scaled(lo, height), scaled(lo, width)


def image_features(model, batch):
    with torch.no_grad():
        out = model.get_image_features(pixel_values=batch["pixel_values"],
                                       pixel_attention_mask=batch["pixel_attention_mask"],
                                       spatial_shapes=batch["spatial_shapes"])
    return out.pooler_output


def check_tokens(out: Path):
    tok = AutoTokenizer.from_pretrained(str(out))
    # config.json says siglip2, which transformers 5 lists among the model types whose hub tokenizer class is
    # wrong: AutoTokenizer takes Siglip2Tokenizer, not tokenizer_config.json's GemmaTokenizer, and
    # Siglip2Tokenizer puts a Lowercase normalizer in front of the file's (in memory; tokenizer.json has none).
    assert type(tok).__name__ == "Siglip2Tokenizer", type(tok)
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "GemmaTokenizer"
    normalizer = str(tok.backend_tokenizer.normalizer)
    assert normalizer.startswith("Sequence(normalizers=[Lowercase()"), normalizer
    assert tok.pad_token_id == 0 and tok.eos_token_id == 1 and tok.padding_side == "right"
    assert tok.model_input_names == ["input_ids"]
    gemma = GemmaTokenizer.from_pretrained(str(out))  # what transformers 4 (and tokenizer_config.json) gives
    raw = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    assert "Lowercase" not in raw.to_str() and raw.get_vocab_size() == VOCAB
    fixed = tokenizers.Tokenizer.from_str(raw.to_str())  # what the Rust side should configure
    fixed.enable_truncation(max_length=CONTEXT)
    fixed.enable_padding(direction="right", pad_id=0, pad_token="<pad>", length=CONTEXT)
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))

    prompts = []
    for text in PROMPTS:
        lower = text.lower()
        enc = tok(text, padding="max_length", max_length=CONTEXT, truncation=True)  # Siglip2Processor's defaults
        assert "attention_mask" not in enc
        ids = enc["input_ids"]
        assert ids == tok(lower, padding="max_length", max_length=CONTEXT, truncation=True)["input_ids"]
        assert ids == gemma(lower, padding="max_length", max_length=CONTEXT, truncation=True)["input_ids"]
        if lower != text:  # GemmaTokenizer alone does not lowercase
            assert gemma(text)["input_ids"] != gemma(lower)["input_ids"], text
        assert fixed.encode(lower).ids == ids, text
        full = tok(text)["input_ids"]
        unpadded = tok(text, truncation=True, max_length=CONTEXT)["input_ids"]
        assert unpadded == sp.encode(lower)[: CONTEXT - 1] + [1]  # big_vision's "sticky" eos
        assert len(ids) == CONTEXT and ids[: len(unpadded)] == unpadded and set(ids[len(unpadded):]) <= {0}
        prompts.append({
            "text": text,
            "text_after_canonicalisation": lower,
            "input_ids": ids,
            "unpadded_ids": unpadded,
            "untruncated_length": len(full),
            "truncated": len(full) > CONTEXT,
            "pooled_position": CONTEXT - 1,
            "pooled_token_id": ids[CONTEXT - 1],
        })
    assert sum(p["truncated"] for p in prompts) == 1
    return tok, prompts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="tiny-siglip2-naflex", help="folder under server/tests/fixtures")
    args = parser.parse_args()
    out = FIXTURES / args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():  # start clean, keeping a hand-written README.md
        if old.name != "README.md":
            shutil.rmtree(old) if old.is_dir() else old.unlink()

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer_files, tokenizer_notes = siglip.make_siglip2_tokenizer(Path(tmp), out)
    sibling = FIXTURES / "tiny-siglip2"
    same_tokenizer = {name: (out / name).read_bytes() == (sibling / name).read_bytes()
                      for name in tokenizer_files if (sibling / name).exists()}
    model, perturbed = make_model(out)  # config.json before AutoTokenizer: it reads model_type
    tok, prompts = check_tokens(out)

    # preprocessor_config.json: what Siglip2ImageProcessor (torchvision backend, transformers 5's default) saves.
    # The goldens use the Pillow backend (Siglip2ImageProcessorPil), whose resize the Rust code reproduces.
    proc_kwargs = dict(patch_size=PATCH, max_num_patches=MAX_PATCHES)
    Siglip2ImageProcessor(**proc_kwargs).save_pretrained(str(out))
    saved_config = json.loads((out / "preprocessor_config.json").read_text())
    assert saved_config["max_num_patches"] == MAX_PATCHES and saved_config["patch_size"] == PATCH
    assert saved_config["resample"] == 2 and saved_config["image_processor_type"] == "Siglip2ImageProcessor"
    auto_proc = AutoImageProcessor.from_pretrained(str(out))
    assert type(auto_proc).__name__ == "Siglip2ImageProcessor"
    pil_proc = Siglip2ImageProcessorPil.from_pretrained(str(out))
    tv_proc = Siglip2ImageProcessor.from_pretrained(str(out))
    assert (pil_proc.patch_size, pil_proc.max_num_patches, int(pil_proc.resample)) == (PATCH, MAX_PATCHES, 2)
    assert list(pil_proc.image_mean) == [0.5] * 3 and list(pil_proc.image_std) == [0.5] * 3
    # Siglip2Processor's own images_kwargs defaults (patch_size 16, max_num_patches 256) win over the
    # image processor's: through the processor, this fixture's images come out in 16-pixel patches.
    processor = Siglip2Processor(image_processor=pil_proc, tokenizer=tok)

    frame_paths = siglip.extract_frames(out)
    for file, width, height, n, pre in IMAGES:
        (out / file).parent.mkdir(exist_ok=True)
        ffmpeg_frame(n, width, height, out / file, pre)
    files = [(f"frames/{p.name}", n) for p, n in zip(frame_paths, siglip.FRAMES)] + [(f[0], f[3]) for f in IMAGES]
    images = {file: Image.open(out / file).convert("RGB") for file, _ in files}
    through_processor = processor(images=[images[files[0][0]]], return_tensors="pt")
    processor_default = {"pixel_values_shape": list(through_processor["pixel_values"].shape),
                         "spatial_shapes": through_processor["spatial_shapes"].tolist()}
    assert processor_default["pixel_values_shape"] == [1, 256, 16 * 16 * 3], processor_default

    eager = Siglip2Model.from_pretrained(str(out), attn_implementation="eager").eval()
    assert model.config._attn_implementation == "sdpa", model.config._attn_implementation
    first_frame = files[0][0]
    preprocess, checks = [], {"eager_vs_sdpa_max_abs_diff": 0.0, "unpadded_vs_padded_max_abs_diff": 0.0,
                              "torchvision_backend_pixel_values_max_abs_diff": 0.0,
                              "torchvision_backend_embedding_max_abs_diff": 0.0}
    batches = {}
    for file, video_frame in files:
        image = images[file]
        budgets = [MAX_PATCHES]
        if file in (first_frame, IMAGES[0][0]):
            budgets += list(OTHER_MAX_PATCHES)
        for budget in budgets:
            batch = pil_proc(images=[image], max_num_patches=budget, return_tensors="pt")
            batch_tv = tv_proc(images=[image], max_num_patches=budget, return_tensors="pt")
            gh, gw = batch["spatial_shapes"][0].tolist()
            valid = gh * gw
            height, width = tv_module.get_image_size_for_max_num_patches(image.height, image.width, PATCH, budget)
            assert (height, width) == (gh * PATCH, gw * PATCH) == size_search(image.height, image.width, PATCH, budget)
            assert valid <= budget and tuple(batch["pixel_values"].shape) == (1, budget, PATCH * PATCH * 3)
            mask = batch["pixel_attention_mask"][0]
            assert mask.tolist() == [1] * valid + [0] * (budget - valid)
            pixels = batch["pixel_values"][0]
            assert pixels.dtype == torch.float32 and not pixels[valid:].any()  # padding rows are 0
            u8, own = own_patches(image, height, width)
            assert np.array_equal(own, pixels[:valid].numpy()), file  # bit for bit
            assert torch.equal(batch_tv["spatial_shapes"], batch["spatial_shapes"])
            tv_diff = float((batch_tv["pixel_values"] - batch["pixel_values"]).abs().max())
            emb = image_features(model, batch)
            emb_tv = image_features(model, batch_tv)
            emb_eager = image_features(eager, batch)
            # Without the padding rows (max_length = the valid count, no mask needed): the same embedding.
            emb_unpadded = image_features(model, {"pixel_values": batch["pixel_values"][:, :valid],
                                                  "pixel_attention_mask": batch["pixel_attention_mask"][:, :valid],
                                                  "spatial_shapes": batch["spatial_shapes"]})
            checks["eager_vs_sdpa_max_abs_diff"] = max(checks["eager_vs_sdpa_max_abs_diff"], float((emb - emb_eager).abs().max()))
            checks["unpadded_vs_padded_max_abs_diff"] = max(checks["unpadded_vs_padded_max_abs_diff"],
                                                            float((emb - emb_unpadded).abs().max()))
            checks["torchvision_backend_pixel_values_max_abs_diff"] = max(checks["torchvision_backend_pixel_values_max_abs_diff"], tv_diff)
            checks["torchvision_backend_embedding_max_abs_diff"] = max(checks["torchvision_backend_embedding_max_abs_diff"],
                                                                       float((emb - emb_tv).abs().max()))
            entry = {
                "file": file,
                "video_frame": video_frame,
                "width": image.width,
                "height": image.height,
                "max_num_patches": budget,
                "patch_size": PATCH,
                "resized_height": height,
                "resized_width": width,
                "spatial_shapes": [gh, gw],
                "num_valid_patches": valid,
                "pixel_attention_mask": mask.tolist(),
                "pixel_values_shape": [valid, PATCH * PATCH * 3],
                "pixel_values_u8": u8.ravel().tolist(),
            }
            if valid * PATCH * PATCH * 3 <= PIXEL_FLOATS_LIMIT or (file == first_frame and budget == MAX_PATCHES):
                entry["pixel_values"] = f32(pixels[:valid])
            entry.update({
                "torchvision_backend_max_abs_diff": tv_diff,
                "embedding": f32(emb[0]),
                "embedding_normalized": f32(l2(emb[0])),
            })
            preprocess.append(entry)
            batches[(file, budget)] = batch
    assert checks["unpadded_vs_padded_max_abs_diff"] < 1e-5 and checks["eager_vs_sdpa_max_abs_diff"] < 1e-5, checks

    # get_image_size_for_max_num_patches on its own, for sizes without an image (the real checkpoints: patch 16).
    size_cases = []
    for height, width in [(180, 320), (320, 180), (720, 1280), (1080, 1920), (1920, 1080), (480, 640), (224, 224),
                          (512, 512), (187, 333), (3, 400), (400, 3), (1, 1), (1, 10000), (10, 10000), (17, 17),
                          (100, 99), (2160, 3840), (1, 2)]:
        for patch, budget in [(8, 16), (8, 64), (8, 256), (16, 256), (16, 576), (16, 1024)]:
            h, w = tv_module.get_image_size_for_max_num_patches(height, width, patch, budget)
            assert (h, w) == size_search(height, width, patch, budget)
            size_cases.append({"height": height, "width": width, "patch_size": patch, "max_num_patches": budget,
                               "resized_height": h, "resized_width": w})

    # The frames at the preprocessor's max_num_patches, batched (same size, so the same spatial shape).
    frame_batch = pil_proc(images=[images[f] for f, _ in files[:3]], return_tensors="pt")
    ids = torch.tensor([p["input_ids"] for p in prompts])
    with torch.no_grad():
        img = image_features(model, frame_batch)
        txt = model.get_text_features(input_ids=ids).pooler_output
        outputs = model(input_ids=ids, **frame_batch)
        logit_scale = model.logit_scale.exp().item()
        logit_bias = model.logit_bias.item()
        cos = l2(img) @ l2(txt).T
        logits = cos * model.logit_scale.exp() + model.logit_bias
        probs = torch.sigmoid(logits)
    assert abs(logit_scale - LOGIT_SCALE) < 1e-4 and logit_bias == LOGIT_BIAS
    assert torch.allclose(logits, outputs.logits_per_image, atol=1e-5)
    for i, (file, _) in enumerate(files[:3]):
        single = next(e for e in preprocess if e["file"] == file and e["max_num_patches"] == MAX_PATCHES)
        assert np.allclose(single["embedding"], img[i].numpy(), atol=1e-5)

    # The text tower is SigLIP 1's: SiglipTextModel with the same weights gives the same embeddings, bit for bit.
    text_cfg = model.config.text_config.to_dict()
    siglip_text = SiglipTextModel(SiglipTextConfig(**{k: v for k, v in text_cfg.items() if k in SiglipTextConfig().to_dict() and k != "model_type"})).eval()
    state = {k[len("text_model."):]: v for k, v in model.state_dict().items() if k.startswith("text_model.")}
    siglip_text.load_state_dict(state)
    with torch.no_grad():
        checks["text_tower_vs_SiglipTextModel_max_abs_diff"] = float((siglip_text(input_ids=ids).pooler_output - txt).abs().max())
    assert checks["text_tower_vs_SiglipTextModel_max_abs_diff"] < 1e-6

    # The vision tower is SigLIP 1's but for the embeddings: on a 32x32 image (spatial shape 4x4 = the grid,
    # where the resize is the identity) SiglipVisionModel with the Linear patch weight reshaped to a Conv2d
    # kernel ([D, 8*8*3] -> [D, 8, 8, 3] -> [D, 3, 8, 8]) gives the same embedding.
    square = Image.open(out / first_frame).convert("RGB").resize((GRID * PATCH, GRID * PATCH), Image.BILINEAR)
    sq = pil_proc(images=[square], max_num_patches=GRID * GRID, return_tensors="pt")
    assert sq["spatial_shapes"][0].tolist() == [GRID, GRID]
    vcfg = model.config.vision_config.to_dict()
    siglip_vision = SiglipVisionModel(SiglipVisionConfig(image_size=GRID * PATCH, **{k: v for k, v in vcfg.items() if k in SiglipVisionConfig().to_dict() and k not in ("model_type", "image_size")})).eval()
    vstate = {k[len("vision_model."):]: v.clone() for k, v in model.state_dict().items() if k.startswith("vision_model.")}
    w = vstate["embeddings.patch_embedding.weight"]
    vstate["embeddings.patch_embedding.weight"] = w.reshape(w.shape[0], PATCH, PATCH, 3).permute(0, 3, 1, 2).contiguous()
    missing = siglip_vision.load_state_dict(vstate, strict=False)
    assert not missing.unexpected_keys and set(missing.missing_keys) <= {"embeddings.position_ids"}, missing
    chw = torch.from_numpy(((np.asarray(square, dtype=np.float64) * (1 / 255)).astype(np.float32) - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.no_grad():
        checks["vision_tower_4x4_vs_SiglipVisionModel_max_abs_diff"] = float(
            (siglip_vision(pixel_values=chw).pooler_output - image_features(model, sq)).abs().max())
    assert checks["vision_tower_4x4_vs_SiglipVisionModel_max_abs_diff"] < 1e-5, checks

    # The resized position embeddings, and how far a wrong resize (or patch layout, or mask) moves the embedding.
    grid = model.vision_model.embeddings.position_embedding.weight.detach().reshape(GRID, GRID, -1)
    resized = []
    resize_cases = [(first_frame, MAX_PATCHES), (first_frame, 16), (IMAGES[3][0], MAX_PATCHES), (IMAGES[4][0], MAX_PATCHES),
                    (IMAGES[1][0], MAX_PATCHES)]
    for file, budget in resize_cases:
        batch = batches[(file, budget)]
        gh, gw = batch["spatial_shapes"][0].tolist()
        with torch.no_grad():
            got = modeling_siglip2.Siglip2VisionEmbeddings.resize_positional_embeddings(grid, batch["spatial_shapes"], budget)[0]
        diffs = {
            "separable_triangle_float64_max_abs_diff": float(np.abs(got[: gh * gw].double().numpy()
                                                                     - separable_resize(grid, gh, gw)).max()),
            "f_interpolate_channels_last_max_abs_diff": float((got[: gh * gw] - reference_resize(grid, gh, gw, channels_last=True)).abs().max()),
            "f_interpolate_nchw_max_abs_diff": float((got[: gh * gw] - reference_resize(grid, gh, gw)).abs().max()),
        }
        assert diffs["separable_triangle_float64_max_abs_diff"] < 1e-5, (file, diffs)
        assert diffs["f_interpolate_channels_last_max_abs_diff"] < 1e-5, (file, diffs)
        assert (diffs["f_interpolate_nchw_max_abs_diff"] < 1e-5) == (gw != 1 or gh == GRID), (file, diffs)
        assert torch.equal(got[gh * gw:], got[:1].expand(budget - gh * gw, -1)), file
        resized.append({"file": file, "max_num_patches": budget, "spatial_shapes": [gh, gw],
                        "shape": [gh * gw, grid.shape[-1]], "values": f32(got[: gh * gw]), **diffs})

    sensitivity = {}
    original = modeling_siglip2.Siglip2VisionEmbeddings.resize_positional_embeddings
    variants = {
        "position resize without antialias": dict(antialias=False, channels_last=True),
        "position resize with align_corners=True, without antialias": dict(align_corners=True, antialias=False,
                                                                             channels_last=True),
        "position resize bicubic (antialiased)": dict(mode="bicubic", channels_last=True),
        "position resize nearest": dict(mode="nearest"),
        "position resize by F.interpolate on a contiguous NCHW tensor on CPU (transformers 4)": dict(),
    }
    for file, budget in [(first_frame, MAX_PATCHES), (first_frame, 16), (IMAGES[3][0], MAX_PATCHES),
                         (IMAGES[4][0], MAX_PATCHES)]:
        batch = batches[(file, budget)]
        gh, gw = batch["spatial_shapes"][0].tolist()
        valid = gh * gw
        base = l2(image_features(model, batch))[0]
        case = {}
        for label, kwargs in variants.items():
            def wrong(pos, shapes, max_length, kwargs=kwargs):
                rows = [reference_resize(pos, int(h), int(w), **kwargs) for h, w in shapes.tolist()]
                return torch.stack([torch.cat([r, r[:1].expand(max_length - r.shape[0], -1)]) for r in rows])
            modeling_siglip2.Siglip2VisionEmbeddings.resize_positional_embeddings = staticmethod(wrong)
            try:
                case[label] = float(base @ l2(image_features(model, batch))[0])
            finally:
                modeling_siglip2.Siglip2VisionEmbeddings.resize_positional_embeddings = staticmethod(original)
        chw = batch["pixel_values"].clone()
        chw[0, :valid] = chw[0, :valid].reshape(valid, PATCH, PATCH, 3).permute(0, 3, 1, 2).reshape(valid, -1)
        case["patches flattened (c, y, x) instead of (y, x, c)"] = float(
            base @ l2(image_features(model, {**batch, "pixel_values": chw}))[0])
        if valid < budget:
            unmasked = {**batch, "pixel_attention_mask": torch.ones_like(batch["pixel_attention_mask"])}
            case["padding rows not masked"] = float(base @ l2(image_features(model, unmasked))[0])
        if gh != gw:
            transposed = {**batch, "spatial_shapes": batch["spatial_shapes"].flip(-1)}
            case["spatial_shapes (width, height) instead of (height, width)"] = float(
                base @ l2(image_features(model, transposed))[0])
        sensitivity[f"{file} max_num_patches {budget} spatial_shapes {gh}x{gw}"] = case
    for label in set(k for case in sensitivity.values() for k in case):
        assert min(case[label] for case in sensitivity.values() if label in case) < 0.999, (label, sensitivity)

    # Intermediate values for the first frame at max_num_patches 64, valid rows only.
    batch = batches[(first_frame, MAX_PATCHES)]
    gh, gw = batch["spatial_shapes"][0].tolist()
    valid = gh * gw
    with torch.no_grad():
        vm = model.vision_model
        embeddings = vm.embeddings(batch["pixel_values"], batch["spatial_shapes"])
        post_ln = vm(pixel_values=batch["pixel_values"], pixel_attention_mask=batch["pixel_attention_mask"],
                     spatial_shapes=batch["spatial_shapes"]).last_hidden_state
    intermediates = {
        "file": first_frame, "max_num_patches": MAX_PATCHES, "spatial_shapes": [gh, gw], "shape": [valid, 32],
        "embeddings_note": "vision_model.embeddings(pixel_values, spatial_shapes): patch_embedding(pixel_values) + "
                           "the resized position embeddings, valid rows",
        "embeddings": f32(embeddings[0, :valid]),
        "post_layernorm_note": "vision_model(...).last_hidden_state: after the encoder (masked) and post_layernorm, "
                               "valid rows (the head pools these with the padding masked)",
        "post_layernorm": f32(post_ln[0, :valid]),
    }

    # The saved folder reproduces the embeddings exactly (deliverable: from_pretrained sanity check).
    again = AutoModel.from_pretrained(str(out)).eval()
    assert type(again).__name__ == "Siglip2Model"
    with torch.no_grad():
        assert torch.equal(image_features(again, frame_batch), img)
        assert torch.equal(again.get_text_features(input_ids=ids).pooler_output, txt)
        reloaded_auto = AutoImageProcessor.from_pretrained(str(out))(images=[images[first_frame]], return_tensors="pt")
        assert torch.equal(reloaded_auto["spatial_shapes"], frame_batch["spatial_shapes"][:1])

    for i, p in enumerate(prompts):
        p["embedding"] = f32(txt[i])
        p["embedding_normalized"] = f32(l2(txt[i]))
    golden = {
        "about": "made by scripts/make_tiny_naflex.py (its docstring says how to run it); the *_note fields say what each value is",
        "family": "siglip2-naflex",
        "model_type": "siglip2",
        "like": "google/siglip2-base-patch16-naflex",
        "seed": SEED,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "torchvision": importlib.metadata.version("torchvision"),
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "sentencepiece": spm.__version__,
            "protobuf": importlib.metadata.version("protobuf"),
            "pillow": PIL.__version__,
            "numpy": np.__version__,
            "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0],
        },
        "tokenizer_files": tokenizer_files,
        "tokenizer_same_bytes_as_tiny_siglip2": same_tokenizer,
        "tokenizer_notes": {
            **tokenizer_notes,
            "AutoTokenizer.from_pretrained(this folder)": type(tok).__name__,
            "transformers class": "Siglip2Tokenizer: config.json's model_type siglip2 is in transformers 5's "
                                  "MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS, so AutoTokenizer ignores "
                                  "tokenizer_config.json's GemmaTokenizer; Siglip2Tokenizer prepends a Lowercase "
                                  "normalizer to tokenizer.json's (in memory only)",
            "canonicalisation": "lowercase (str.lower) and nothing else, as for tiny-siglip2; here transformers does "
                                "it itself, so input_ids are those of the raw text given to AutoTokenizer",
        },
        "context_length": CONTEXT,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "patch_size": PATCH,
        "max_num_patches": MAX_PATCHES,
        "position_embedding_grid": [GRID, GRID],
        "logit_scale": logit_scale,
        "logit_bias": logit_bias,
        "perturbed_weights_note": "after Siglip2Model(config) (torch.manual_seed(0)) every bias got N(0, 0.1^2) and every "
                                  "LayerNorm weight 1 + N(0, 0.1^2) (torch.Generator seeded 1); the vision position "
                                  f"embeddings were multiplied by {POSITION_SCALE}; logit_scale = ln {LOGIT_SCALE}, "
                                  f"logit_bias = {LOGIT_BIAS}",
        "preprocess_note": "Siglip2ImageProcessorPil (transformers' Pillow backend) with this folder's "
                           "preprocessor_config.json, one image per call, max_num_patches as given. resized_height/width: "
                           "get_image_size_for_max_num_patches. pixel_values_u8: the Pillow-bilinear resized uint8 RGB "
                           "image cut into spatial_shapes[0] x spatial_shapes[1] patches, row-major, each patch "
                           "flattened as (y in patch, x in patch, channel); valid rows only (num_valid_patches x 192). "
                           "pixel_values (where present, same layout): the processor's float32 output, which equals bit "
                           "for bit f32(f64(u8) * (1/255)) then (x - 0.5) / 0.5 in f32. The processor pads the "
                           "rows after the valid ones up to max_num_patches with 0.0 and pixel_attention_mask 0. "
                           "torchvision_backend_max_abs_diff: Siglip2ImageProcessor (torchvision, transformers 5's "
                           "default) against these pixel values. embedding: get_image_features(...).pooler_output of "
                           "this one image (max_num_patches rows, padding masked)",
        "preprocess": preprocess,
        "resize_sizes_note": "get_image_size_for_max_num_patches(height, width, patch_size, max_num_patches) for more "
                             "sizes, without images (patch 16 with 256, 576, 1024 are the real NaFlex settings)",
        "resize_sizes": size_cases,
        "frames_note": "the three frames at the preprocessor's max_num_patches (64), batched: embedding = "
                       "get_image_features(**processor output).pooler_output (the raw image embeds, before "
                       "normalisation); their pixels are the preprocess entries with the same file and max_num_patches 64",
        "frames": [
            {"file": file, "video_frame": n, "max_num_patches": MAX_PATCHES,
             "spatial_shapes": frame_batch["spatial_shapes"][i].tolist(),
             "embedding": f32(img[i]), "embedding_normalized": f32(l2(img[i]))}
            for i, (file, n) in enumerate(files[:3])
        ],
        "prompts_note": "input_ids = AutoTokenizer (Siglip2Tokenizer, lowercases)(text, padding='max_length', "
                        "max_length=64, truncation=True), Siglip2Processor's text defaults; no attention_mask is "
                        "returned and none is passed: embedding = get_text_features(input_ids).pooler_output, "
                        "pooled at position 63, as for SigLIP 1",
        "prompts": prompts,
        "logits_note": "rows = frames, columns = prompts: cosine(frame embedding, prompt embedding) * logit_scale + "
                       "logit_bias (logit_scale is exp of the stored parameter); equals model(...).logits_per_image",
        "logits": [f32(row) for row in logits],
        "similarity": [f32(row) for row in cos],
        "probabilities_note": "sigmoid(logits)",
        "probabilities": [f32(row) for row in probs],
        "position_embeddings_note": "vision_model.embeddings.position_embedding.weight [16, 32] is a 4x4 grid, row-major "
                                    "(index = y * 4 + x). For an image of spatial_shapes (h, w) it is resized to h x w "
                                    "as F.interpolate(grid as [1, 32, 4, 4], size=(h, w), mode='bilinear', "
                                    "align_corners=False, antialias=True) and flattened row-major to [h*w, 32] "
                                    "(Siglip2VisionEmbeddings.resize_positional_embeddings of transformers 5, which computes "
                                    "that resize's weights itself: per axis, triangle weights max(0, 1 - |j - c| / s) "
                                    "with c = (i + 0.5) * 4 / n - 0.5 and s = max(4 / n, 1), normalised to sum 1). "
                                    "The *_max_abs_diff fields compare it to a float64 separable computation and to "
                                    "F.interpolate on CPU: with channels_last memory it agrees; with the contiguous "
                                    "NCHW tensor that transformers 4 passed, torch gets width-1 outputs (h, 1), h != 4, "
                                    "wrong (every row = the first). Rows h*w.. up to max_num_patches repeat row 0; only "
                                    "the valid rows are stored",
        "position_embeddings": {"grid": f32(grid), "resized": resized},
        "intermediates": intermediates,
        "checks": checks,
        "sensitivity_note": "per image: the cosine between its embedding and the one a wrong step gives (1 = the "
                            "step makes no difference for that image); each step is told apart by at least one image",
        "sensitivity": sensitivity,
        "siglip2_processor_note": "Siglip2Processor(image_processor, tokenizer)(images=...) uses its own images_kwargs "
                                  "defaults (patch_size 16, max_num_patches 256) over the image processor's: for this "
                                  "fixture it gives the shape below, which the model cannot take. The goldens call the "
                                  "image processor directly",
        "siglip2_processor_default": processor_default,
    }
    text = to_json(golden) + "\n"
    assert json.loads(text) == json.loads(json.dumps(golden))
    (out / "goldens.json").write_text(text)
    assert len(text.encode()) < 1_500_000, len(text.encode())

    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    for f in sorted(out.rglob("*")):
        if f.is_file():
            print(f"{f.stat().st_size:>10}  {f.relative_to(out)}  {hashlib.sha256(f.read_bytes()).hexdigest()[:12]}")
    print(f"{total:>10}  total")
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        shapes = {k: list(f.get_slice(k).get_shape()) for k in sorted(f.keys())}
    print(len(shapes), "tensors;", {k: v for k, v in shapes.items() if "embed" in k or "head" in k or "logit" in k})
    print("perturbed:", len(perturbed), "tensors; same tokenizer bytes as tiny-siglip2:", same_tokenizer)
    for e in preprocess:
        print(f"  {e['file']:32} {e['width']}x{e['height']} max {e['max_num_patches']:>3}: resized "
              f"{e['resized_width']}x{e['resized_height']}, spatial {e['spatial_shapes']}, tv diff {e['torchvision_backend_max_abs_diff']:.4f}")
    print("checks:", checks)
    print("sensitivity:", sensitivity)
    print("logits range:", float(logits.min()), float(logits.max()), "probabilities:", float(probs.min()), float(probs.max()))
    print("truncated:", [p["truncated"] for p in prompts])


if __name__ == "__main__":
    main()
