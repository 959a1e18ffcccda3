#!/usr/bin/env python3
"""Writes two tiny open_clip models with random weights in open_clip's Hugging Face *Hub* layout
(`open_clip_config.json` + `open_clip_model.safetensors`, what `open_clip.push_to_hf_hub` uploads and
`open_clip.create_model('hf-hub:...')` / `'local-dir:...'` reads), plus PNG test images and
goldens.json with what PyTorch + open_clip (+ timm) compute for them:

- server/tests/fixtures/tiny-open-clip/: an OpenAI-style ViT CLIP (open_clip's own `CLIP` class,
  QuickGELU, like the `ViT-B-32-quickgelu` configs), registered here as open_clip model `tiny-ViT`.
- server/tests/fixtures/tiny-pe-core/: Meta's Perception Encoder Core as open_clip builds it
  (`CustomTextCLIP`: a timm `Eva` vision tower with 2D RoPE + absolute position embedding and an
  attention-pool head, and open_clip's `TextTransformer`), registered here as open_clip model
  `tiny-PE-Core` whose vision tower is a timm model `vit_pe_core_test_patch8_32` registered here
  with the same options as timm's `vit_pe_core_base_patch16_224`, only small.

The Rust implementation is checked against goldens.json. The script also checks that the written
folder loads back into open_clip (`create_model_and_transforms('local-dir:<folder>')`) and gives
the same embeddings bit for bit, that a from-scratch re-implementation of the PE-Core forward pass
(`reference_pe_*` below, written from the state dict only) matches open_clip, and that the
tiny-ViT weights, renamed to Hugging Face `CLIPModel` names, give the same embeddings in
transformers.

Run by hand (not in CI); it needs ffmpeg and, in a virtual environment:

    python3 -m venv /tmp/ocvenv
    /tmp/ocvenv/bin/pip install torch transformers safetensors open_clip_torch timm pillow numpy
    /tmp/ocvenv/bin/python3 scripts/make_tiny_open_clip.py            # both fixtures
    /tmp/ocvenv/bin/python3 scripts/make_tiny_open_clip.py --only pe  # or --only vit

Nothing is downloaded at run time: the tokenizer is open_clip's `SimpleTokenizer` (OpenAI's CLIP
BPE file ships inside the open_clip_torch wheel), the weights are random. Both README.md files
are hand-written except the block between the `<!-- state-dict:begin/end -->` markers, which this
script rewrites.
"""
import argparse
import importlib.metadata
import json
import math
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import open_clip
import open_clip.factory
import PIL
import safetensors.torch
import timm
import torch
import torch.nn.functional as F
import torchvision
from open_clip.push_to_hf_hub import save_config_for_hf
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image
from timm.layers import LayerNorm
from timm.models import register_model
from timm.models.eva import _create_eva

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "server" / "tests" / "fixtures"
VIDEO = ROOT / "data" / "sample.mp4"
SEED = 0
FRAMES = [30, 200, 420]
FRAME_SIZE = (320, 180)
SOT, EOT = 49406, 49407
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

PROMPTS = [
    "a photo of a cat",
    "a brick wall",
    "stairs",
    "café crème brûlée",
    "一只猫",
    "🐈 on a 🧱 wall",
    "   a   spaced   prompt  ",
    "A ROCKET LAUNCH AT NIGHT",
    "coffee, please! (no sugar?) -- it's 3:45pm; thanks...",
    # Longer than 77 tokens: truncated to 76 tokens, the last one replaced by <end_of_text>.
    "a very long description of a photograph, " * 8
    + "showing an astronaut, a cat, a cup of coffee, a rocket, the deep field of the hubble "
    "telescope, a brick wall and some grass, all in one single frame of a video that goes on",
]

# (a) An OpenAI-style ViT CLIP: open_clip's CLIP class, VisionTransformer + text transformer.
TINY_VIT = "tiny-ViT"
TINY_VIT_CFG = {
    "embed_dim": 16,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}
TINY_VIT_PP = {"mean": OPENAI_MEAN, "std": OPENAI_STD, "interpolation": "bicubic", "resize_mode": "shortest"}

# (b) PE-Core: model_configs/PE-Core-B-16.json with a tiny timm tower and a tiny text tower.
TINY_PE = "tiny-PE-Core"
TINY_PE_TIMM = "vit_pe_core_test_patch8_32"
# timm/models/eva.py vit_pe_core_base_patch16_224's model_args, only smaller (and img_size given:
# the real ones take it from their pretrained cfg's input_size).
TINY_PE_TIMM_ARGS = dict(
    img_size=32,
    patch_size=8,
    embed_dim=32,
    depth=2,
    num_heads=4,
    mlp_ratio=4.0,
    global_pool="map",
    attn_type="rope",
    use_pre_transformer_norm=True,
    use_rot_pos_emb=True,
    ref_feat_shape=(4, 4),  # the grid of the native resolution, as in every real PE-Core config
    rope_grid_offset=1.0,
    rope_grid_indexing="xy",
    attn_pool_num_heads=8,
    attn_pool_mlp_ratio=4.0,
    norm_layer=partial(LayerNorm, eps=1e-5),
)
TINY_PE_CFG = {
    "embed_dim": 16,
    "vision_cfg": {
        "image_size": 32,
        "timm_model_name": TINY_PE_TIMM,
        "timm_model_pretrained": False,
        "timm_pool": "map",
        "timm_proj": None,
    },
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
    "custom_text": True,
}
# open_clip/pretrained.py _pecfg(): what every PE-Core-* pretrained tag sets.
TINY_PE_PP = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bilinear", "resize_mode": "squash"}


@register_model
def vit_pe_core_test_patch8_32(pretrained: bool = False, **kwargs):
    """A tiny Perception Encoder Core vision tower for tests (random weights only)."""
    return _create_eva(TINY_PE_TIMM, pretrained=pretrained, **dict(TINY_PE_TIMM_ARGS, **kwargs))


open_clip.factory._MODEL_CONFIGS[TINY_VIT] = TINY_VIT_CFG
open_clip.factory._MODEL_CONFIGS[TINY_PE] = TINY_PE_CFG


# ----------------------------------------------------------------------------------------------
# Output helpers


def f32list(t):
    """Float32 values as the shortest decimal strings that read back as the same float32."""
    arr = np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, dtype=np.float32).ravel()
    return [float(str(v)) for v in arr]


def dumps(obj, indent=0):
    """JSON with one item per line, except lists of numbers, which stay on one line (size)."""
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad} {json.dumps(k, ensure_ascii=False)}: {dumps(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(isinstance(v, (int, float, bool, str)) or v is None for v in obj) and not any(
            isinstance(v, str) and len(v) > 40 for v in obj
        ):
            return "[" + ",".join(json.dumps(v, ensure_ascii=False) for v in obj) + "]"
        return "[\n" + ",\n".join(pad + " " + dumps(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def l2(v):
    return v / v.norm(dim=-1, keepdim=True)


# ----------------------------------------------------------------------------------------------
# Test images


def extract_frames(out: Path):
    """The three video frames (as make_tiny_clip.py) and the other test shapes made from them."""
    frames = out / "frames"
    frames.mkdir(parents=True, exist_ok=True)

    def ffmpeg(n, w, h, path):
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(VIDEO), "-vf", f"select=eq(n\\,{n}),scale={w}:{h}",
             "-frames:v", "1", "-pix_fmt", "rgb24", str(path)],
            check=True,
        )

    video = []
    for n in FRAMES:
        path = frames / f"frame_{n:03d}.png"
        ffmpeg(n, *FRAME_SIZE, path)
        video.append((path, n))
    shapes = [video[0]]  # one 320x180 frame stands for its shape in the preprocessing goldens
    # portrait 180x320: frame 30 transposed (exact pixels)
    portrait = frames / "portrait_180x320.png"
    Image.open(video[0][0]).convert("RGB").transpose(Image.Transpose.TRANSPOSE).save(portrait)
    # odd size 333x187: frame 420 scaled by ffmpeg from the video
    odd = frames / "odd_333x187.png"
    ffmpeg(420, 333, 187, odd)
    # 4:3 240x180: the centre 240 columns of frame 200 (exact pixels)
    four3 = frames / "crop_240x180.png"
    Image.open(video[1][0]).convert("RGB").crop((40, 0, 280, 180)).save(four3)
    # 64x49: chosen so that Python's round-half-to-even decides: "shortest" resizes to 41x32 and
    # centre-crops at x = round(4.5) = 4; "longest" resizes to 32 x round(24.5) = 24.
    edge = frames / "edge_64x49.png"
    ffmpeg(30, 64, 49, edge)
    shapes += [(portrait, None), (odd, None), (four3, None), (edge, None)]
    for path, _ in shapes:
        assert path.stat().st_size < 150_000, path
    return video, shapes


# ----------------------------------------------------------------------------------------------
# Models


def perturb(model):
    """Random noise on every parameter, so that nothing stays at its initial value (LayerNorm
    weights 1, biases 0, logit_scale log(1/0.07), ...)."""
    gen = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                scale = 0.3
            elif p.ndim == 1 or name.endswith((".latent", "cls_token", "class_embedding")):
                scale = 0.1  # LayerNorm weights and biases, biases, tokens
            else:
                scale = 0.02
            before = p.detach().clone()
            p.add_(torch.randn(p.shape, generator=gen) * scale)
            assert (p != before).all(), name


def build(name, pp):
    torch.manual_seed(SEED)
    model = open_clip.create_model(name, force_preprocess_cfg=pp).eval()
    perturb(model)
    return model


def write_hub_folder(model, cfg, out: Path):
    """open_clip_config.json and open_clip_model.safetensors exactly as open_clip's
    push_to_hf_hub.save_for_hf writes them (save_for_hf itself also wants an HF tokenizer to call
    save_pretrained on, and writes the pickle open_clip_pytorch_model.bin; neither is written)."""
    save_config_for_hf(model, out / "open_clip_config.json", model_config=cfg)
    safetensors.torch.save_file(model.state_dict(), out / "open_clip_model.safetensors")


# ----------------------------------------------------------------------------------------------
# An independent PE-Core forward pass from the state dict (what /tmp/pe_core_notes.md describes).


def ln(x, sd, prefix, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], sd[prefix + ".weight"], sd[prefix + ".bias"], eps)


def linear(x, sd, prefix):
    return x @ sd[prefix + ".weight"].T + sd[prefix + ".bias"]


def rope_table(grid_h, grid_w, head_dim, ref=(None, None), offset=1.0, temperature=10000.0):
    """sin, cos of shape [grid_h*grid_w, head_dim], interleaved pairs [a0,a0,a1,a1,...]; the first
    half of the angles is x (column) * bands, the second y (row) * bands."""
    nb = head_dim // 4
    bands = 1.0 / (temperature ** (torch.arange(nb, dtype=torch.float32) / nb))
    ref_h, ref_w = ref
    xs = torch.arange(grid_w, dtype=torch.float32) + offset
    ys = torch.arange(grid_h, dtype=torch.float32) + offset
    if ref_w is not None:
        xs = xs / grid_w * ref_w
        ys = ys / grid_h * ref_h
    y, x = torch.meshgrid(ys, xs, indexing="ij")  # token t = row * grid_w + col
    ang = torch.cat([x.reshape(-1, 1) * bands, y.reshape(-1, 1) * bands], dim=1)  # [N, head_dim/2]
    ang = ang.repeat_interleave(2, dim=1)  # [N, head_dim]
    return ang.sin(), ang.cos()


def rotate_pairs(x):
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)"""
    return torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).reshape(x.shape)


def reference_pe_image(sd, pixels, heads, pool_heads, ref_grid):
    p = "visual.trunk."
    w = sd[p + "patch_embed.proj.weight"]  # [D, 3, P, P], no bias
    D, P = w.shape[0], w.shape[-1]
    B, _, H, W = pixels.shape
    gh, gw = H // P, W // P
    x = F.conv2d(pixels, w, stride=P).flatten(2).transpose(1, 2)  # [B, gh*gw, D], row-major
    x = torch.cat([sd[p + "cls_token"].expand(B, -1, -1), x], dim=1)
    x = x + sd[p + "pos_embed"]
    x = ln(x, sd, p + "norm_pre")
    hd = D // heads
    sin, cos = rope_table(gh, gw, hd, ref=ref_grid)
    depth = len({k.split(".")[3] for k in sd if k.startswith(p + "blocks.")})
    for i in range(depth):
        b = f"{p}blocks.{i}."
        h = ln(x, sd, b + "norm1")
        qkv = linear(h, sd, b + "attn.qkv").reshape(B, -1, 3, heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, heads, N, hd]
        q = torch.cat([q[:, :, :1], q[:, :, 1:] * cos + rotate_pairs(q[:, :, 1:]) * sin], dim=2)
        k = torch.cat([k[:, :, :1], k[:, :, 1:] * cos + rotate_pairs(k[:, :, 1:]) * sin], dim=2)
        a = ((q @ k.transpose(-1, -2)) * hd**-0.5).softmax(-1) @ v
        x = x + linear(a.transpose(1, 2).reshape(B, -1, D), sd, b + "attn.proj")
        h = ln(x, sd, b + "norm2")
        x = x + linear(F.gelu(linear(h, sd, b + "mlp.fc1")), sd, b + "mlp.fc2")
    x = ln(x, sd, p + "norm")
    # attention pool with one learned latent query over all tokens (class token included)
    a = p + "attn_pool."
    phd = D // pool_heads
    q = linear(sd[a + "latent"].expand(B, -1, -1), sd, a + "q").reshape(B, 1, pool_heads, phd).transpose(1, 2)
    kv = linear(x, sd, a + "kv").reshape(B, -1, 2, pool_heads, phd).permute(2, 0, 3, 1, 4)
    o = ((q @ kv[0].transpose(-1, -2)) * phd**-0.5).softmax(-1) @ kv[1]
    o = linear(o.transpose(1, 2).reshape(B, 1, D), sd, a + "proj")
    o = o + linear(F.gelu(linear(ln(o, sd, a + "norm"), sd, a + "mlp.fc1")), sd, a + "mlp.fc2")
    return linear(o[:, 0], sd, p + "head")


def reference_text(sd, ids, heads, prefix, gelu):
    """open_clip's TextTransformer (OpenAI CLIP's text tower); prefix "text." for CustomTextCLIP."""
    p = prefix
    B, N = ids.shape
    x = sd[p + "token_embedding.weight"][ids] + sd[p + "positional_embedding"][:N]
    D = x.shape[-1]
    hd = D // heads
    mask = torch.full((N, N), float("-inf")).triu(1)
    depth = len({k.split(".")[len(p.split(".")) + 1] for k in sd if k.startswith(p + "transformer.resblocks.")})
    for i in range(depth):
        b = f"{p}transformer.resblocks.{i}."
        h = ln(x, sd, b + "ln_1")
        qkv = h @ sd[b + "attn.in_proj_weight"].T + sd[b + "attn.in_proj_bias"]
        q, k, v = qkv.reshape(B, N, 3, heads, hd).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-1, -2)) * hd**-0.5 + mask).softmax(-1) @ v
        x = x + linear(a.transpose(1, 2).reshape(B, N, D), sd, b + "attn.out_proj")
        h = ln(x, sd, b + "ln_2")
        x = x + linear(gelu(linear(h, sd, b + "mlp.c_fc")), sd, b + "mlp.c_proj")
    x = ln(x, sd, p + "ln_final")
    pooled = x[torch.arange(B), ids.argmax(dim=-1)]
    return pooled @ sd[p + "text_projection"]


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


# ----------------------------------------------------------------------------------------------
# The OpenAI-style model in Hugging Face CLIPModel names (a cross-check of the key mapping)


def to_hf_clip(sd, cfg):
    import transformers

    E, v, t = cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"]
    common = dict(projection_dim=E, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    config = transformers.CLIPConfig(
        text_config=dict(common, hidden_size=t["width"], intermediate_size=4 * t["width"],
                         num_hidden_layers=t["layers"], num_attention_heads=t["heads"],
                         vocab_size=t["vocab_size"], max_position_embeddings=t["context_length"],
                         bos_token_id=SOT, eos_token_id=EOT, pad_token_id=EOT),
        vision_config=dict(common, hidden_size=v["width"], intermediate_size=4 * v["width"],
                           num_hidden_layers=v["layers"], num_attention_heads=v["width"] // v["head_width"],
                           image_size=v["image_size"], patch_size=v["patch_size"]),
        projection_dim=E,
    )
    hf = {}

    def block(src, dst, layers):
        for i in range(layers):
            s, d = f"{src}.{i}.", f"{dst}.{i}."
            for name, new in [("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"),
                              ("mlp.c_proj", "mlp.fc2"), ("attn.out_proj", "self_attn.out_proj")]:
                hf[d + new + ".weight"], hf[d + new + ".bias"] = sd[s + name + ".weight"], sd[s + name + ".bias"]
            qw, kw, vw = sd[s + "attn.in_proj_weight"].chunk(3)
            qb, kb, vb = sd[s + "attn.in_proj_bias"].chunk(3)
            for n, w_, b_ in [("q_proj", qw, qb), ("k_proj", kw, kb), ("v_proj", vw, vb)]:
                hf[d + f"self_attn.{n}.weight"], hf[d + f"self_attn.{n}.bias"] = w_, b_

    vm, tm = "vision_model.", "text_model."
    hf[vm + "embeddings.patch_embedding.weight"] = sd["visual.conv1.weight"]
    hf[vm + "embeddings.class_embedding"] = sd["visual.class_embedding"]
    hf[vm + "embeddings.position_embedding.weight"] = sd["visual.positional_embedding"]
    for a, b in [("visual.ln_pre", "pre_layrnorm"), ("visual.ln_post", "post_layernorm")]:
        hf[vm + b + ".weight"], hf[vm + b + ".bias"] = sd[a + ".weight"], sd[a + ".bias"]
    block("visual.transformer.resblocks", vm + "encoder.layers", v["layers"])
    hf["visual_projection.weight"] = sd["visual.proj"].T
    hf[tm + "embeddings.token_embedding.weight"] = sd["token_embedding.weight"]
    hf[tm + "embeddings.position_embedding.weight"] = sd["positional_embedding"]
    block("transformer.resblocks", tm + "encoder.layers", t["layers"])
    hf[tm + "final_layer_norm.weight"], hf[tm + "final_layer_norm.bias"] = sd["ln_final.weight"], sd["ln_final.bias"]
    hf["text_projection.weight"] = sd["text_projection"].T
    hf["logit_scale"] = sd["logit_scale"]
    model = transformers.CLIPModel(config).eval()
    missing, unexpected = model.load_state_dict({k: v.contiguous() for k, v in hf.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    assert not missing and not unexpected, (missing, unexpected)
    return model


def hf_features(out):
    return out if isinstance(out, torch.Tensor) else out.pooler_output


# ----------------------------------------------------------------------------------------------


def state_dict_table(sd):
    lines = ["| key | shape |", "| --- | --- |"]
    for k, v in sd.items():
        lines.append(f"| `{k}` | {list(v.shape)} |")
    total = sum(v.numel() for v in sd.values())
    lines.append("")
    lines.append(f"{len(sd)} tensors, {total} float32 values. Stored in `open_clip_model.safetensors` "
                 "in this order (safetensors sorts its header by name; the order here is `state_dict()`'s).")
    return "\n".join(lines)


def update_readme(out: Path, sd):
    readme = out / "README.md"
    block = "<!-- state-dict:begin -->\n" + state_dict_table(sd) + "\n<!-- state-dict:end -->"
    text = readme.read_text() if readme.exists() else f"# {out.name}\n\n## State dict\n\n{block}\n"
    text = re.sub(r"<!-- state-dict:begin -->.*<!-- state-dict:end -->", lambda _: block, text, flags=re.S)
    readme.write_text(text)


def versions():
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "open_clip_torch": importlib.metadata.version("open_clip_torch"),
        "timm": timm.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "ftfy": importlib.metadata.version("ftfy"),
        "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0],
    }


def preprocess_goldens(shapes, mean, std, size=32):
    out = []
    for path, _ in shapes:
        img = Image.open(path).convert("RGB")
        for mode in ["shortest", "squash", "longest"]:
            for interp in ["bicubic", "bilinear"]:
                cfg = PreprocessCfg(size=size, mean=mean, std=std, interpolation=interp, resize_mode=mode)
                tf = image_transform_v2(cfg, is_train=False)
                resized = tf.transforms[0](img)  # the resize step alone, before crop / pad
                pixels = tf(img)
                assert tuple(pixels.shape) == (3, size, size)
                out.append({
                    "image": f"frames/{path.name}",
                    "width": img.width,
                    "height": img.height,
                    "resize_mode": mode,
                    "interpolation": interp,
                    "size": size,
                    "mean": list(mean),
                    "std": list(std),
                    "resized_width": resized.width,
                    "resized_height": resized.height,
                    "pixel_values": f32list(pixels),
                })
    return out


def make(kind):
    name, cfg, pp = (TINY_VIT, TINY_VIT_CFG, TINY_VIT_PP) if kind == "vit" else (TINY_PE, TINY_PE_CFG, TINY_PE_PP)
    out = FIXTURES / ("tiny-open-clip" if kind == "vit" else "tiny-pe-core")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():  # start clean, keeping the hand-written README.md
        if old.name != "README.md":
            if old.is_dir():
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
            else:
                old.unlink()

    model = build(name, pp)
    write_hub_folder(model, json.loads(json.dumps(cfg)), out)
    video, shapes = extract_frames(out)

    # Load the written folder back, as a user of the hub model would, and use *its* preprocessing
    # and tokenizer for the goldens.
    model2, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    model2.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out}")
    assert isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer)
    ctx = cfg["text_cfg"]["context_length"]
    assert tokenizer.context_length == ctx
    sd = model.state_dict()
    sd2 = model2.state_dict()
    assert list(sd) == list(sd2) and all(torch.equal(sd[k], sd2[k]) for k in sd)
    assert model2.visual.preprocess_cfg["resize_mode"] == pp["resize_mode"]
    assert model2.visual.preprocess_cfg["interpolation"] == pp["interpolation"]
    assert tuple(model2.visual.preprocess_cfg["mean"]) == pp["mean"]
    assert model2.visual.preprocess_cfg["size"] in (32, (32, 32))
    # The preprocessing of the reloaded model equals image_transform_v2 with the fixture's cfg.
    direct = image_transform_v2(PreprocessCfg(size=32, **pp), is_train=False)

    images = [Image.open(p).convert("RGB") for p, _ in video]
    pixels = torch.stack([preprocess(im) for im in images])
    assert torch.equal(pixels, torch.stack([direct(im) for im in images]))
    ids = tokenizer(PROMPTS)
    assert ids.shape == (len(PROMPTS), ctx)
    if kind == "pe":
        # open_clip's tokenizer for the real PE-Core-B-16 is the same SimpleTokenizer with 32 tokens.
        real = open_clip.get_tokenizer("PE-Core-B-16")
        assert real.context_length == 32 and torch.equal(real(PROMPTS), ids)
    else:
        assert torch.equal(open_clip.get_tokenizer(TINY_VIT)(PROMPTS), ids)
        assert torch.equal(open_clip.tokenize(PROMPTS), ids)

    with torch.no_grad():
        img = model.encode_image(pixels)
        txt = model.encode_text(ids)
        # round trip: the reloaded model gives the same embeddings bit for bit
        assert torch.equal(model2.encode_image(pixels), img)
        assert torch.equal(model2.encode_text(ids), txt)
        img_n = model.encode_image(pixels, normalize=True)
        txt_n = model.encode_text(ids, normalize=True)
        logit_scale = model.logit_scale.exp()
        logit_bias = getattr(model, "logit_bias", None)
        logits, _ = model.get_logits(pixels, ids)
        feats = model(pixels, ids)
        assert torch.allclose(feats[0], img_n) and torch.allclose(feats[2], logit_scale)
        assert torch.allclose(logits, logit_scale * img_n @ txt_n.T, atol=1e-6)
        probs = logits.sigmoid() if logit_bias is not None else logits.softmax(dim=-1)

        # Causal attention: the text embedding is the same when the sequence stops after
        # <end_of_text> (checked with the reference implementation, which accepts shorter input).
        for i in range(len(PROMPTS)):
            n = int(ids[i].argmax()) + 1
            alone = reference_text(sd, ids[i : i + 1, :n], cfg["text_cfg"]["heads"],
                                   "text." if kind == "pe" else "", F.gelu if kind == "pe" else quick_gelu)
            assert torch.allclose(alone[0], txt[i], atol=1e-5), (alone[0] - txt[i]).abs().max()

        checks = {}
        if kind == "pe":
            heads = TINY_PE_TIMM_ARGS["num_heads"]
            ref_img = reference_pe_image(sd, pixels, heads, TINY_PE_TIMM_ARGS["attn_pool_num_heads"],
                                         TINY_PE_TIMM_ARGS["ref_feat_shape"])
            ref_txt = reference_text(sd, ids, cfg["text_cfg"]["heads"], "text.", F.gelu)
            # and against the cached table timm builds
            sin, cos = rope_table(4, 4, 32 // heads, ref=TINY_PE_TIMM_ARGS["ref_feat_shape"])
            assert torch.allclose(model.visual.trunk.rope.get_embed(), torch.cat([sin, cos], 1), atol=1e-6)
        else:
            ref_img = None
            ref_txt = reference_text(sd, ids, cfg["text_cfg"]["heads"], "", quick_gelu)
            hf = to_hf_clip(sd, cfg)
            hf_img = hf_features(hf.get_image_features(pixel_values=pixels))
            hf_txt = hf_features(hf.get_text_features(input_ids=torch.where(ids == 0, EOT, ids)))
            assert torch.allclose(hf_img, img, atol=1e-5), (hf_img - img).abs().max()
            assert torch.allclose(hf_txt, txt, atol=1e-5), (hf_txt - txt).abs().max()
            checks["hf_clipmodel_max_abs_diff"] = {
                "image": float((hf_img - img).abs().max()), "text": float((hf_txt - txt).abs().max())}
        if ref_img is not None:
            assert torch.allclose(ref_img, img, atol=1e-5), (ref_img - img).abs().max()
            checks["reference_image_max_abs_diff"] = float((ref_img - img).abs().max())
        assert torch.allclose(ref_txt, txt, atol=1e-5), (ref_txt - txt).abs().max()
        checks["reference_text_max_abs_diff"] = float((ref_txt - txt).abs().max())
        debug = pe_debug(model, pixels, ids) if kind == "pe" else None

    prompts = []
    for i, text in enumerate(PROMPTS):
        row = ids[i].tolist()
        full = [SOT] + tokenizer.encode(text) + [EOT]
        pos = int(ids[i].argmax())
        assert row[pos] == EOT and row.index(EOT) == pos
        prompts.append({
            "text": text,
            "input_ids": row,
            "unpadded_ids": row[: pos + 1],
            "untruncated_length": len(full),
            "truncated": len(full) > ctx,
            "pool_position": pos,
            "embedding": f32list(txt[i]),
            "embedding_normalized": f32list(txt_n[i]),
        })
    golden = {
        "about": "made by scripts/make_tiny_open_clip.py; see README.md",
        "open_clip_model_name": name,
        "seed": SEED,
        "versions": versions(),
        "open_clip_config": json.loads((out / "open_clip_config.json").read_text()),
        "context_length": ctx,
        "tokenizer": {
            "class": "open_clip.tokenizer.SimpleTokenizer", "clean": "lower (ftfy.fix_text, html.unescape twice, "
            "whitespace collapsed, strip, lower-case)", "sot_id": SOT, "eot_id": EOT, "pad_id": 0,
            "truncation": "first context_length ids, the last one set to eot_id",
        },
        "logit_scale": float(logit_scale),
        "logit_scale_param": float(model.logit_scale.detach()),
        "logit_bias": None if logit_bias is None else float(logit_bias),
        "pixel_values_note": "the reloaded model's own preprocess (create_model_and_transforms('local-dir:...')) "
        "on the PIL RGB image, shape [3,32,32] channel-first, flattened",
        "frames": [
            {
                "file": f"frames/{p.name}",
                "video_frame": n,
                "width": images[i].width,
                "height": images[i].height,
                "pixel_values_shape": [3, 32, 32],
                "pixel_values": f32list(pixels[i]),
                "embedding": f32list(img[i]),
                "embedding_normalized": f32list(img_n[i]),
            }
            for i, (p, n) in enumerate(video)
        ],
        "prompts": prompts,
        "logits_note": "logit_scale * cos(image, text)" + (" + logit_bias" if logit_bias is not None else "")
        + "; rows = frames, columns = prompts (model.get_logits)",
        "logits": [f32list(r) for r in logits],
        "probabilities_note": ("sigmoid(logits)" if logit_bias is not None else "softmax over the prompts of each frame"),
        "probabilities": [f32list(r) for r in probs],
        "checks": checks,
        "preprocess_note": "open_clip.transform.image_transform_v2(PreprocessCfg(size, mean, std, interpolation, "
        "resize_mode), is_train=False) on the PIL RGB image; resized_width/height: the image after the resize "
        "step, before the centre crop (shortest) or the zero padding (longest)",
        "preprocess": preprocess_goldens(shapes, pp["mean"], pp["std"]),
    }
    if kind == "pe":
        golden["timm_model_name"] = TINY_PE_TIMM
        golden["timm_model_args"] = {k: (v if k != "norm_layer" else "LayerNorm(eps=1e-5)")
                                     for k, v in TINY_PE_TIMM_ARGS.items()}
        golden["debug"] = debug
    path = out / "goldens.json"
    path.write_text(dumps(golden) + "\n")

    # every float reads back as the same float32
    back = json.loads(path.read_text())
    assert np.array_equal(np.float32(back["frames"][0]["pixel_values"]), pixels[0].flatten().numpy())
    assert np.array_equal(np.float32(back["prompts"][9]["embedding"]), txt[9].numpy())
    assert path.stat().st_size < 1_500_000, path.stat().st_size
    update_readme(out, sd)

    for f in sorted(out.rglob("*")):
        if f.is_file():
            print(f"{f.stat().st_size:>10}  {f.relative_to(out)}")
    print(f"{sum(f.stat().st_size for f in out.rglob('*') if f.is_file()):>10}  total {out.name}")
    print("checks:", json.dumps(checks))
    print("truncated:", [p["truncated"] for p in prompts])


def pe_debug(model, pixels, ids):
    """Intermediate values of the vision tower for frame 0 and of the text tower for prompt 0."""
    t = model.visual.trunk
    x = pixels[:1]
    patches = t.patch_embed(x)
    x1, rope = t._pos_embed(patches)
    x2 = t.norm_pre(x1)
    x3 = t.blocks[0](x2, rope=rope)
    feats = t.forward_features(x)
    pooled = t.attn_pool(feats)
    assert torch.allclose(t.head(pooled), model.encode_image(x), atol=1e-6)
    txt = model.text
    e, _ = txt._embeds(ids[:1])
    return {
        "note": "frame 0 (vision) and prompt 0 (text), each flattened row-major with the shape given",
        "rope_sin_cos": {"shape": list(rope.shape), "values": f32list(rope),
                         "what": "timm RotaryEmbeddingCat.get_embed(): per patch token (row-major), "
                                 "[sin(angles) | cos(angles)], angles interleaved [x*b0, x*b0, x*b1, x*b1, "
                                 "y*b0, y*b0, y*b1, y*b1]"},
        "patch_embed": {"shape": list(patches.shape[1:]), "values": f32list(patches[0])},
        "after_pos_embed": {"shape": list(x1.shape[1:]), "values": f32list(x1[0])},
        "after_norm_pre": {"shape": list(x2.shape[1:]), "values": f32list(x2[0])},
        "after_block_0": {"shape": list(x3.shape[1:]), "values": f32list(x3[0])},
        "after_final_norm": {"shape": list(feats.shape[1:]), "values": f32list(feats[0])},
        "attn_pool": {"shape": list(pooled.shape[1:]), "values": f32list(pooled[0])},
        "text_embeds": {"shape": list(e.shape[1:]), "values": f32list(e[0]),
                        "what": "token_embedding[ids] + positional_embedding, prompt 0"},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["vit", "pe"], help="write one fixture only")
    args = parser.parse_args()
    torch.set_num_threads(1)  # deterministic CPU reductions
    for kind in ["vit", "pe"]:
        if args.only in (None, kind):
            make(kind)


if __name__ == "__main__":
    main()
