#!/usr/bin/env python3
"""Writes a tiny SigLIP (version 1) with random weights in open_clip's Hugging Face *Hub* layout, as
the real `timm/ViT-B-16-SigLIP` repository has it, plus goldens.json with what PyTorch + open_clip
(+ timm) compute for it:

- server/tests/fixtures/tiny-open-clip-siglip/: open_clip's `CustomTextCLIP` built from the installed
  `model_configs/ViT-B-16-SigLIP.json` with every option kept and only the sizes made small. The vision
  tower is a timm `VisionTransformer` registered here as `vit_test_patch8_siglip_32` with the same
  model_args as timm's `vit_base_patch16_siglip_224` (no class token, `global_pool='map'`), only small;
  the text tower is open_clip's `TextTransformer` with the real config's text options
  (`no_causal_mask`, `pool_type: last`, `proj_bias`, LayerNorm eps 1e-6). Registered here as open_clip
  model `tiny-ViT-SigLIP`.

The tokenizer is the 1000-piece SentencePiece vocabulary of ../tiny-siglip/ (spiece.model), saved as
the T5 tokenizer files that open_clip's hub repositories carry (`tokenizer.json`,
`tokenizer_config.json`, `special_tokens_map.json`); `open_clip.get_tokenizer('local-dir:<folder>')`
reads them with `HFTokenizer` (transformers `AutoTokenizer`) and `clean='canonicalize'`.

Besides writing the fixture, the script checks that:
- the folder loads back into open_clip (`create_model_and_transforms('local-dir:<folder>')`) with the
  same weights and the same embeddings bit for bit, and its preprocessing is image_transform_v2 of the
  real SigLIP preprocess cfg (bicubic, squash, mean = std = 0.5);
- a from-scratch forward pass from the state dict (`reference_*` below) matches open_clip;
- the weights, renamed to Hugging Face names (`to_hf_siglip`), loaded into `transformers.SiglipModel`
  with `hidden_act: gelu` (exact erf GELU, as open_clip/timm compute) give the same image and text
  embeddings (<= 1e-5); with SigLIP's usual `gelu_pytorch_tanh` they do not (the difference is recorded);
- the tokenizer ids equal the raw `tokenizers` library on tokenizer.json after open_clip's cleaning, and
  how they compare with transformers' `SiglipTokenizer` on ../tiny-siglip/spiece.model (recorded per
  prompt).

Run by hand (not in CI), in the virtual environment of scripts/make_tiny_open_clip.py (which it imports
for its helpers) with transformers, tokenizers and sentencepiece installed:

    /tmp/ocvenv/bin/python3 scripts/make_tiny_open_clip_siglip.py

Nothing is downloaded. The frames are copied from ../tiny-open-clip/frames. README.md is hand-written
except the block between the `<!-- state-dict:begin/end -->` markers, which this script rewrites.
"""
import copy
import importlib.metadata
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import open_clip
import open_clip.factory
import PIL
import safetensors.torch
import timm
import tokenizers
import torch
import torch.nn.functional as F
import torchvision
import transformers
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image
from timm.models import register_model
from timm.models.vision_transformer import _create_vision_transformer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_tiny_open_clip as base  # noqa: E402  (helpers: perturb, build, dumps, f32list, prompts, ...)

FIXTURES = base.FIXTURES
OUT = FIXTURES / "tiny-open-clip-siglip"
FRAMES_FROM = FIXTURES / "tiny-open-clip" / "frames"
SPIECE = FIXTURES / "tiny-siglip" / "spiece.model"
SEED = base.SEED
REAL = "ViT-B-16-SigLIP"
NAME = "tiny-ViT-SigLIP"
TIMM_NAME = "vit_test_patch8_siglip_32"
PAD_ID = EOS_ID = 1  # "</s>", as open_clip's SigLipTokenizer sets it and the hub tokenizer_config.json says

# timm/models/vision_transformer.py vit_base_patch16_siglip_224's model_args
# (patch_size=16, embed_dim=768, depth=12, num_heads=12, class_token=False, global_pool='map'), only
# smaller, and img_size given (the real one takes 224 from its pretrained cfg's input_size; open_clip's
# TimmModel does not pass image_size to timm). Everything else is VisionTransformer's default: mlp_ratio 4,
# qkv_bias True, pre_norm False (so no norm_pre and a conv bias), final_norm True, LayerNorm eps 1e-6,
# act_layer nn.GELU (exact, erf), pos_embed 'learn', no_embed_class False (irrelevant without a class
# token), attn_pool = AttentionPoolLatent(num_heads=num_heads, mlp_ratio=mlp_ratio).
TIMM_ARGS = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, class_token=False, global_pool="map")

# The real config with only the sizes changed (the keys are checked against the installed file below).
SIZES = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "timm_model_name": TIMM_NAME},
    "text_cfg": {"vocab_size": 1000, "width": 32, "heads": 4, "layers": 2},
}

PROMPTS = base.PROMPTS + [
    # ../tiny-siglip's extra prompts (punctuation, "_", non-ASCII punctuation, tabs/newlines)
    "Hello, World! It's a DOG'S LIFE: (really?)",
    "snake_case & {braces} [brackets] #hash @at 100% <angle>",
    "«Guillemets», “curly quotes” — an em dash… ¡Olé!",
    "tabs\tand\nnewlines   and ÜMLAUTS",
    # open_clip's basic_clean: html.unescape twice, ftfy.fix_text (mojibake, curly quotes, full width)
    "fish &amp;amp; chips &lt;3",
    "cafÃ© crÃ¨me, ‘single’ quotes",
]


@register_model
def vit_test_patch8_siglip_32(pretrained: bool = False, **kwargs):
    """A tiny SigLIP vision tower for tests (random weights only)."""
    return _create_vision_transformer(TIMM_NAME, pretrained=pretrained, **dict(TIMM_ARGS, **kwargs))


def tiny_config():
    real = open_clip.get_model_config(REAL)
    cfg = copy.deepcopy(real)
    cfg["embed_dim"] = SIZES["embed_dim"]
    cfg["vision_cfg"].update(SIZES["vision_cfg"])
    cfg["text_cfg"].update(SIZES["text_cfg"])

    def keys(d, p=""):
        return {p + k for k in d} | {x for k, v in d.items() if isinstance(v, dict) for x in keys(v, p + k + ".")}

    assert keys(cfg) == keys(real)
    changed = {k for k in keys(cfg) if not isinstance(_get(cfg, k), dict) and _get(cfg, k) != _get(real, k)}
    assert changed == {"embed_dim", "vision_cfg.image_size", "vision_cfg.timm_model_name", "text_cfg.vocab_size",
                       "text_cfg.width", "text_cfg.heads", "text_cfg.layers"}, changed
    assert cfg["text_cfg"]["context_length"] == 64 and cfg["text_cfg"]["hf_tokenizer_name"] == "timm/ViT-B-16-SigLIP"
    return cfg, real


def _get(d, dotted):
    for k in dotted.split("."):
        d = d[k]
    return d


CFG, REAL_CFG = tiny_config()
open_clip.factory._MODEL_CONFIGS[NAME] = CFG
# open_clip/pretrained.py _slpcfg(): what every SigLIP pretrained tag sets.
_real_pp = open_clip.get_pretrained_cfg(REAL, "webli")
PP = {k: _real_pp[k] for k in ("mean", "std", "interpolation", "resize_mode")}
assert PP == {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bicubic", "resize_mode": "squash"}


# ----------------------------------------------------------------------------------------------
# Tokenizer files


def write_tokenizer(out: Path):
    """What open_clip's SigLipTokenizer + push_to_hf_hub wrote for the real repositories: a T5 tokenizer
    (extra_ids=0, legacy=False) on the SentencePiece model, pad and eos both '</s>' (1), saved with
    save_pretrained. open_clip's SigLipTokenizer cannot do it itself under transformers 5 (it passes the
    .model path positionally, which transformers 5's T5Tokenizer takes as `vocab`), so this does the same
    through T5Tokenizer.from_pretrained on a folder holding the spiece.model."""
    with tempfile.TemporaryDirectory() as tmp:
        src, saved = Path(tmp) / "src", Path(tmp) / "saved"
        src.mkdir()
        shutil.copy(SPIECE, src / "spiece.model")
        tok = transformers.T5Tokenizer.from_pretrained(str(src), extra_ids=0, legacy=False)
        tok.pad_token_id = PAD_ID  # as SigLipTokenizer.__init__
        tok.eos_token_id = EOS_ID
        tok.save_pretrained(str(saved))
        written = sorted(p.name for p in saved.iterdir())
        assert written == ["tokenizer.json", "tokenizer_config.json"], written
        shutil.copy(saved / "tokenizer.json", out / "tokenizer.json")
        conf = json.loads((saved / "tokenizer_config.json").read_text())
    for k in ("is_local", "local_files_only"):  # about this machine's load, not the tokenizer
        conf.pop(k, None)
    (out / "tokenizer_config.json").write_text(json.dumps(conf, indent=2, ensure_ascii=False) + "\n")
    # transformers 4 (which wrote the real repositories) also wrote this file; transformers 5 does not.
    stm = {"eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>"}
    (out / "special_tokens_map.json").write_text(json.dumps(stm, indent=2) + "\n")
    return conf


def clean(text):
    """open_clip.tokenizer._clean_canonicalize (HFTokenizer with clean='canonicalize')."""
    return open_clip.tokenizer.canonicalize_text(open_clip.tokenizer.basic_clean(text))


# ----------------------------------------------------------------------------------------------
# An independent SigLIP forward pass from the open_clip state dict


def gelu(x):
    return F.gelu(x)  # exact (erf): timm's nn.GELU and open_clip's nn.GELU without act_kwargs


def reference_image(sd, pixels, heads):
    p = "visual.trunk."
    ln = lambda x, k: base.ln(x, sd, k, eps=1e-6)  # noqa: E731
    lin = lambda x, k: base.linear(x, sd, k)  # noqa: E731
    w = sd[p + "patch_embed.proj.weight"]  # [D, 3, P, P], with bias
    D, P = w.shape[0], w.shape[-1]
    B = pixels.shape[0]
    x = F.conv2d(pixels, w, sd[p + "patch_embed.proj.bias"], stride=P).flatten(2).transpose(1, 2)  # row-major
    x = x + sd[p + "pos_embed"]  # [1, N, D]; no class token, no norm_pre
    hd = D // heads
    depth = len({k.split(".")[3] for k in sd if k.startswith(p + "blocks.")})
    for i in range(depth):
        b = f"{p}blocks.{i}."
        h = ln(x, b + "norm1")
        q, k, v = lin(h, b + "attn.qkv").reshape(B, -1, 3, heads, hd).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-1, -2)) * hd**-0.5).softmax(-1) @ v
        x = x + lin(a.transpose(1, 2).reshape(B, -1, D), b + "attn.proj")
        x = x + lin(gelu(lin(ln(x, b + "norm2"), b + "mlp.fc1")), b + "mlp.fc2")
    x = ln(x, p + "norm")
    a = p + "attn_pool."
    q = lin(sd[a + "latent"].expand(B, -1, -1), a + "q").reshape(B, 1, heads, hd).transpose(1, 2)
    k, v = lin(x, a + "kv").reshape(B, -1, 2, heads, hd).permute(2, 0, 3, 1, 4)
    o = ((q @ k.transpose(-1, -2)) * hd**-0.5).softmax(-1) @ v
    o = lin(o.transpose(1, 2).reshape(B, 1, D), a + "proj")
    o = o + lin(gelu(lin(ln(o, a + "norm"), a + "mlp.fc1")), a + "mlp.fc2")
    return o[:, 0]  # TimmModel head is empty (timm_proj "none")


def reference_text(sd, ids, heads):
    p = "text."
    ln = lambda x, k: base.ln(x, sd, k, eps=1e-6)  # noqa: E731
    lin = lambda x, k: base.linear(x, sd, k)  # noqa: E731
    B, N = ids.shape
    x = sd[p + "token_embedding.weight"][ids] + sd[p + "positional_embedding"][:N]
    D = x.shape[-1]
    hd = D // heads
    depth = len({k.split(".")[3] for k in sd if k.startswith(p + "transformer.resblocks.")})
    for i in range(depth):
        b = f"{p}transformer.resblocks.{i}."
        h = ln(x, b + "ln_1")
        qkv = h @ sd[b + "attn.in_proj_weight"].T + sd[b + "attn.in_proj_bias"]
        q, k, v = qkv.reshape(B, N, 3, heads, hd).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-1, -2)) * hd**-0.5).softmax(-1) @ v  # no mask at all
        x = x + lin(a.transpose(1, 2).reshape(B, N, D), b + "attn.out_proj")
        x = x + lin(gelu(lin(ln(x, b + "ln_2"), b + "mlp.c_fc")), b + "mlp.c_proj")
    x = ln(x, p + "ln_final")
    return lin(x[:, -1], p + "text_projection")  # the last position, whatever token is there


# ----------------------------------------------------------------------------------------------
# The mapping onto Hugging Face SiglipModel names (what /tmp/siglip_openclip_notes.md describes)


class _Used(dict):
    """A state dict that remembers which keys were read."""

    def __init__(self, sd):
        super().__init__(sd)
        self.used = set()

    def __getitem__(self, k):
        self.used.add(k)
        return super().__getitem__(k)


def to_hf_siglip_state_dict(sd):
    sd = _Used(sd)
    hf = {}
    vm, tm, vt = "vision_model.", "text_model.", "visual.trunk."

    def copy2(src, dst):
        hf[dst + ".weight"], hf[dst + ".bias"] = sd[src + ".weight"], sd[src + ".bias"]

    def split3(w, b, dst):
        for n, w_, b_ in zip(("q_proj", "k_proj", "v_proj"), w.chunk(3), b.chunk(3)):
            hf[f"{dst}self_attn.{n}.weight"], hf[f"{dst}self_attn.{n}.bias"] = w_, b_

    # vision
    copy2(vt + "patch_embed.proj", vm + "embeddings.patch_embedding")
    hf[vm + "embeddings.position_embedding.weight"] = sd[vt + "pos_embed"][0]  # [1, N, D] -> [N, D]
    vdepth = len({k.split(".")[3] for k in sd if k.startswith(vt + "blocks.")})
    for i in range(vdepth):
        s, d = f"{vt}blocks.{i}.", f"{vm}encoder.layers.{i}."
        copy2(s + "norm1", d + "layer_norm1")
        split3(sd[s + "attn.qkv.weight"], sd[s + "attn.qkv.bias"], d)
        copy2(s + "attn.proj", d + "self_attn.out_proj")
        copy2(s + "norm2", d + "layer_norm2")
        copy2(s + "mlp.fc1", d + "mlp.fc1")
        copy2(s + "mlp.fc2", d + "mlp.fc2")
    copy2(vt + "norm", vm + "post_layernorm")
    a, h = vt + "attn_pool.", vm + "head."
    hf[h + "probe"] = sd[a + "latent"]  # [1, 1, D]
    hf[h + "attention.in_proj_weight"] = torch.cat([sd[a + "q.weight"], sd[a + "kv.weight"]])  # q, k, v
    hf[h + "attention.in_proj_bias"] = torch.cat([sd[a + "q.bias"], sd[a + "kv.bias"]])
    copy2(a + "proj", h + "attention.out_proj")
    copy2(a + "norm", h + "layernorm")
    copy2(a + "mlp.fc1", h + "mlp.fc1")
    copy2(a + "mlp.fc2", h + "mlp.fc2")
    # text
    hf[tm + "embeddings.token_embedding.weight"] = sd["text.token_embedding.weight"]
    hf[tm + "embeddings.position_embedding.weight"] = sd["text.positional_embedding"]
    tdepth = len({k.split(".")[3] for k in sd if k.startswith("text.transformer.resblocks.")})
    for i in range(tdepth):
        s, d = f"text.transformer.resblocks.{i}.", f"{tm}encoder.layers.{i}."
        copy2(s + "ln_1", d + "layer_norm1")
        split3(sd[s + "attn.in_proj_weight"], sd[s + "attn.in_proj_bias"], d)
        copy2(s + "attn.out_proj", d + "self_attn.out_proj")
        copy2(s + "ln_2", d + "layer_norm2")
        copy2(s + "mlp.c_fc", d + "mlp.fc1")
        copy2(s + "mlp.c_proj", d + "mlp.fc2")
    copy2("text.ln_final", tm + "final_layer_norm")
    copy2("text.text_projection", tm + "head")  # nn.Linear(width, embed_dim) with bias: no transpose
    hf["logit_scale"] = sd["logit_scale"].reshape(1)  # [] -> [1]
    hf["logit_bias"] = sd["logit_bias"].reshape(1)
    assert sd.used == set(sd), set(sd) - sd.used  # every open_clip tensor is used
    return hf


def to_hf_siglip(sd, cfg, hidden_act="gelu"):
    v, t = TIMM_ARGS, cfg["text_cfg"]
    vision = dict(hidden_size=v["embed_dim"], intermediate_size=4 * v["embed_dim"], num_hidden_layers=v["depth"],
                  num_attention_heads=v["num_heads"], image_size=v["img_size"], patch_size=v["patch_size"],
                  hidden_act=hidden_act, layer_norm_eps=1e-6, vision_use_head=True)
    text = dict(hidden_size=t["width"], intermediate_size=4 * t["width"], num_hidden_layers=t["layers"],
                num_attention_heads=t["heads"], vocab_size=t["vocab_size"], max_position_embeddings=t["context_length"],
                hidden_act=hidden_act, layer_norm_eps=t["norm_kwargs"]["eps"], projection_size=cfg["embed_dim"],
                pad_token_id=PAD_ID, bos_token_id=None, eos_token_id=EOS_ID)
    config = transformers.SiglipConfig(text_config=text, vision_config=vision)
    model = transformers.SiglipModel(config).eval()
    hf = to_hf_siglip_state_dict(sd)
    missing, unexpected = model.load_state_dict({k: x.contiguous() for k, x in hf.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    assert not missing and not unexpected, (missing, unexpected)
    return model


# ----------------------------------------------------------------------------------------------


def versions():
    names = ["open_clip_torch", "ftfy", "sentencepiece", "protobuf", "safetensors"]
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
    } | {n: importlib.metadata.version(n) for n in names}


def main():
    torch.set_num_threads(1)  # deterministic CPU reductions
    out = OUT
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():  # start clean, keeping the hand-written README.md
        if old.name != "README.md":
            shutil.rmtree(old) if old.is_dir() else old.unlink()

    model = base.build(NAME, PP)
    base.write_hub_folder(model, json.loads(json.dumps(CFG)), out)
    tok_conf = write_tokenizer(out)
    shutil.copytree(FRAMES_FROM, out / "frames")
    frames = out / "frames"
    video = [(frames / f"frame_{n:03d}.png", n) for n in base.FRAMES]
    shapes = [video[0]] + [(frames / n, None) for n in
                           ["portrait_180x320.png", "odd_333x187.png", "crop_240x180.png", "edge_64x49.png"]]

    # The model as open_clip builds it: the pieces the notes describe.
    trunk = model.visual.trunk
    assert isinstance(model, open_clip.CustomTextCLIP) and isinstance(trunk, timm.models.VisionTransformer)
    assert trunk.cls_token is None and trunk.reg_token is None and trunk.num_prefix_tokens == 0
    assert isinstance(trunk.norm_pre, torch.nn.Identity) and isinstance(trunk.fc_norm, torch.nn.Identity)
    assert isinstance(trunk.head, torch.nn.Identity) and len(model.visual.head) == 0
    assert trunk.patch_embed.proj.bias is not None and trunk.pos_embed.shape == (1, 16, 32)
    assert trunk.attn_pool.num_heads == TIMM_ARGS["num_heads"] and trunk.attn_pool.latent_len == 1
    assert trunk.attn_pool.pool == "token" and trunk.attn_pool.mlp.fc1.out_features == 128
    for m in trunk.modules():
        if isinstance(m, torch.nn.LayerNorm):
            assert m.eps == 1e-6
        if isinstance(m, torch.nn.GELU):
            assert m.approximate == "none"
    txt_tower = model.text
    assert txt_tower.attn_mask is None and txt_tower.pool_type == "last" and txt_tower.cls_emb is None
    assert not txt_tower.use_pad_mask and isinstance(txt_tower.text_projection, torch.nn.Linear)
    for m in txt_tower.modules():
        if isinstance(m, torch.nn.LayerNorm):
            assert m.eps == 1e-6
        if isinstance(m, torch.nn.GELU):
            assert m.approximate == "none"  # ViT-B-16-SigLIP.json has no act_kwargs (SigLIP2's says tanh)
    assert model.logit_scale.shape == () and model.logit_bias.shape == ()

    # Load the written folder back, as a user of the hub model would, and use *its* preprocessing
    # and tokenizer for the goldens.
    model2, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    model2.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out}")
    assert isinstance(tokenizer, open_clip.tokenizer.HFTokenizer)
    assert tokenizer.clean_fn is open_clip.tokenizer._clean_canonicalize and not tokenizer.strip_sep_token
    assert tokenizer.tokenizer_mode == "" and type(tokenizer.tokenizer).__name__ == "T5Tokenizer"
    assert tokenizer.tokenizer.pad_token_id == PAD_ID and tokenizer.tokenizer.eos_token_id == EOS_ID
    ctx = CFG["text_cfg"]["context_length"]
    assert tokenizer.context_length == ctx
    sd = model.state_dict()
    sd2 = model2.state_dict()
    assert list(sd) == list(sd2) and all(torch.equal(sd[k], sd2[k]) for k in sd)
    pp2 = model2.visual.preprocess_cfg
    assert pp2["resize_mode"] == PP["resize_mode"] and pp2["interpolation"] == PP["interpolation"]
    assert tuple(pp2["mean"]) == PP["mean"] and tuple(pp2["std"]) == PP["std"] and pp2["size"] in (32, (32, 32))
    direct = image_transform_v2(PreprocessCfg(size=32, **PP), is_train=False)

    images = [Image.open(p).convert("RGB") for p, _ in video]
    pixels = torch.stack([preprocess(im) for im in images])
    assert torch.equal(pixels, torch.stack([direct(im) for im in images]))
    ids = tokenizer(PROMPTS)
    assert ids.shape == (len(PROMPTS), ctx)

    # Tokenizer cross-checks.
    raw = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    cleaned = [clean(t) for t in PROMPTS]
    raw.enable_truncation(max_length=ctx)
    raw.enable_padding(pad_id=PAD_ID, pad_token="</s>", length=ctx)
    assert [e.ids for e in raw.encode_batch(cleaned)] == ids.tolist()
    raw.no_truncation()
    raw.no_padding()
    untruncated = [e.ids for e in raw.encode_batch(cleaned)]
    siglip_tok = transformers.SiglipTokenizer(vocab_file=str(SPIECE), model_max_length=ctx)
    assert siglip_tok.pad_token_id == PAD_ID and siglip_tok.eos_token_id == EOS_ID
    hf_ids = siglip_tok(PROMPTS, padding="max_length", max_length=ctx, truncation=True).input_ids
    # SiglipTokenizer on open_clip's cleaned text (its own canonicalisation is then a no-op) gives open_clip's ids
    assert siglip_tok(cleaned, padding="max_length", max_length=ctx, truncation=True).input_ids == ids.tolist()
    siglip_tiny = json.loads((FIXTURES / "tiny-siglip" / "goldens.json").read_text())
    tiny_ids = {p["text"]: p["input_ids"] for p in siglip_tiny["prompts"]}

    with torch.no_grad():
        img = model.encode_image(pixels)
        txt = model.encode_text(ids)
        assert torch.equal(model2.encode_image(pixels), img)
        assert torch.equal(model2.encode_text(ids), txt)
        img_n = model.encode_image(pixels, normalize=True)
        txt_n = model.encode_text(ids, normalize=True)
        logit_scale = model.logit_scale.exp()
        logit_bias = model.logit_bias
        logits, _ = model.get_logits(pixels, ids)
        assert torch.allclose(logits, logit_scale * img_n @ txt_n.T + logit_bias, atol=1e-5)
        feats = model(pixels, ids)
        assert torch.allclose(feats[0], img_n) and torch.allclose(feats[3], logit_bias)  # (img, txt, scale, bias)
        probs = logits.sigmoid()

        checks = {}
        heads = TIMM_ARGS["num_heads"]
        ref_img = reference_image(sd, pixels, heads)
        ref_txt = reference_text(sd, ids, CFG["text_cfg"]["heads"])
        assert torch.allclose(ref_img, img, atol=1e-5), (ref_img - img).abs().max()
        assert torch.allclose(ref_txt, txt, atol=1e-5), (ref_txt - txt).abs().max()
        checks["reference_image_max_abs_diff"] = float((ref_img - img).abs().max())
        checks["reference_text_max_abs_diff"] = float((ref_txt - txt).abs().max())

        hf = to_hf_siglip(sd, CFG, "gelu")
        hf_img = base.hf_features(hf.get_image_features(pixel_values=pixels))
        hf_txt = base.hf_features(hf.get_text_features(input_ids=ids))
        assert torch.allclose(hf_img, img, atol=1e-5), (hf_img - img).abs().max()
        assert torch.allclose(hf_txt, txt, atol=1e-5), (hf_txt - txt).abs().max()
        hf_out = hf(input_ids=ids, pixel_values=pixels)
        assert torch.allclose(hf_out.logits_per_image, logits, atol=1e-5)
        checks["hf_siglipmodel_gelu_max_abs_diff"] = {
            "image": float((hf_img - img).abs().max()), "text": float((hf_txt - txt).abs().max()),
            "logits": float((hf_out.logits_per_image - logits).abs().max())}
        tanh = to_hf_siglip(sd, CFG, "gelu_pytorch_tanh")
        t_img = base.hf_features(tanh.get_image_features(pixel_values=pixels))
        t_txt = base.hf_features(tanh.get_text_features(input_ids=ids))
        checks["hf_siglipmodel_gelu_pytorch_tanh_max_abs_diff_not_a_match"] = {
            "image": float((t_img - img).abs().max()), "text": float((t_txt - txt).abs().max())}

        # pool_type 'last' over a bidirectional tower: the padding changes the embedding
        short = model.encode_text(ids[:1, : int((ids[0] == EOS_ID).nonzero()[0]) + 1])
        checks["padding_check"] = {
            "prompt": PROMPTS[0],
            "cosine_unpadded_vs_padded": float(F.cosine_similarity(short, txt[:1])[0]),
            "note": "encode_text on the ids up to the first </s> only (positions 0..n-1, pooled at n-1) vs the "
                    "64 padded ids: the padding is part of the input",
        }

    prompts = []
    tok_diff = []
    for i, text in enumerate(PROMPTS):
        row = ids[i].tolist()
        eos = row.index(EOS_ID)
        full = untruncated[i]
        assert full[-1] == EOS_ID and (row[:eos + 1] == full if len(full) <= ctx else row == full[:ctx - 1] + [EOS_ID])
        same = hf_ids[i] == row
        if not same:
            tok_diff.append(i)
        if text in tiny_ids:
            assert tiny_ids[text] == hf_ids[i]  # ../tiny-siglip/goldens.json was made by SiglipTokenizer too
        prompts.append({
            "text": text,
            "text_after_cleaning": cleaned[i],
            "input_ids": row,
            "unpadded_ids": row[: eos + 1],
            "untruncated_length": len(full),
            "truncated": len(full) > ctx,
            "eos_position": eos,
            "pool_position": ctx - 1,
            "pooled_token_id": row[-1],
            "siglip_tokenizer_input_ids": hf_ids[i],
            "same_as_siglip_tokenizer": same,
            "embedding": base.f32list(txt[i]),
            "embedding_normalized": base.f32list(txt_n[i]),
        })
    checks["prompts_where_siglip_tokenizer_differs"] = [PROMPTS[i] for i in tok_diff]

    golden = {
        "about": "made by scripts/make_tiny_open_clip_siglip.py; see README.md",
        "open_clip_model_name": NAME,
        "like": REAL,
        "seed": SEED,
        "versions": versions(),
        "open_clip_config": json.loads((out / "open_clip_config.json").read_text()),
        "real_open_clip_model_cfg": REAL_CFG,
        "timm_model_name": TIMM_NAME,
        "timm_model_args": TIMM_ARGS,
        "context_length": ctx,
        "tokenizer": {
            "class": "open_clip.tokenizer.HFTokenizer around transformers T5Tokenizer (tokenizers backend, reads "
                     "tokenizer.json); open_clip.get_tokenizer('local-dir:<folder>') loads it from the folder, "
                     "'hf-hub:timm/...' from hf_tokenizer_name",
            "clean": "canonicalize: ftfy.fix_text, html.unescape twice, strip; then '_' -> ' ', delete the 32 "
                     "ASCII string.punctuation characters, lower-case, ' '.join(text.split())",
            "call": "tokenizer(texts, max_length=64, padding='max_length', truncation=True).input_ids",
            "eos_id": EOS_ID, "pad_id": PAD_ID, "bos_id": None, "unk_id": 2,
            "truncation": "63 text ids, then </s> (1)",
            "tokenizer_config.json": tok_conf,
        },
        "logit_scale": float(logit_scale),
        "logit_scale_param": float(model.logit_scale.detach()),
        "logit_bias": float(logit_bias.detach()),
        "pixel_values_note": "the reloaded model's own preprocess (create_model_and_transforms('local-dir:...')): "
        "torchvision Resize((32, 32), bicubic) of the PIL RGB image (squash, no crop), ToTensor, Normalize(0.5, "
        "0.5); shape [3,32,32] channel-first, flattened",
        "frames": [
            {
                "file": f"frames/{p.name}",
                "video_frame": n,
                "width": images[i].width,
                "height": images[i].height,
                "pixel_values_shape": [3, 32, 32],
                "pixel_values": base.f32list(pixels[i]),
                "embedding": base.f32list(img[i]),
                "embedding_normalized": base.f32list(img_n[i]),
            }
            for i, (p, n) in enumerate(video)
        ],
        "text_embedding_note": "encode_text of all 64 ids (no attention mask, bidirectional), pooled at the last "
        "position (63) whatever token is there, then text_projection (Linear with bias)",
        "prompts": prompts,
        "logits_note": "exp(logit_scale_param) * cos(image, text) + logit_bias; rows = frames, columns = prompts "
        "(model.get_logits)",
        "logits": [base.f32list(r) for r in logits],
        "probabilities_note": "sigmoid(logits)",
        "probabilities": [base.f32list(r) for r in probs],
        "checks": checks,
        "preprocess_note": "open_clip.transform.image_transform_v2(PreprocessCfg(size, mean, std, interpolation, "
        "resize_mode), is_train=False) on the PIL RGB image; resized_width/height: the image after the resize "
        "step, before the centre crop (shortest) or the zero padding (longest)",
        "preprocess": base.preprocess_goldens(shapes, PP["mean"], PP["std"]),
    }
    path = out / "goldens.json"
    path.write_text(base.dumps(golden) + "\n")

    back = json.loads(path.read_text())
    assert np.array_equal(np.float32(back["frames"][0]["pixel_values"]), pixels[0].flatten().numpy())
    assert np.array_equal(np.float32(back["prompts"][9]["embedding"]), txt[9].numpy())
    assert path.stat().st_size < 1_500_000, path.stat().st_size
    base.update_readme(out, sd)

    for f in sorted(out.rglob("*")):
        if f.is_file():
            print(f"{f.stat().st_size:>10}  {f.relative_to(out)}")
    print(f"{sum(f.stat().st_size for f in out.rglob('*') if f.is_file()):>10}  total {out.name}")
    print("checks:", json.dumps(checks, ensure_ascii=False, indent=1))
    print("truncated:", [p["truncated"] for p in prompts])


if __name__ == "__main__":
    main()
