#!/usr/bin/env python3
"""Writes server/tests/fixtures/tiny-clip/: a tiny CLIP with random weights in Hugging Face
layout (config.json, model.safetensors, tokenizer.json, preprocessor_config.json), three PNG
frames from data/sample.mp4, and goldens.json with what PyTorch + transformers compute for them
(preprocessed pixels, image and text embeddings, token ids, similarities). The Rust (candle)
implementation in server/src/embed/ is checked against these goldens.

Run by hand (not in CI); it needs ffmpeg and, in a virtual environment:

    python3 -m venv /tmp/tinyclip-venv
    /tmp/tinyclip-venv/bin/pip install torch transformers safetensors open_clip_torch pillow numpy
    /tmp/tinyclip-venv/bin/python3 scripts/make_tiny_clip.py
    /tmp/tinyclip-venv/bin/python3 scripts/make_tiny_clip.py --hidden-act gelu --out tiny-clip-gelu

The second writes the same model with the exact GELU of LAION's OpenCLIP checkpoints (their
Hugging Face configs say `hidden_act: gelu`) into server/tests/fixtures/tiny-clip-gelu/.

(The PyPI torch wheel for Linux pulls in the CUDA libraries, several GB; a CPU-only torch works
just as well.) Nothing is downloaded at run time: the tokenizer's vocabulary is OpenAI's CLIP
BPE file (MIT licence) that ships inside the open_clip_torch wheel, the weights are random.
"""
import argparse
import gzip
import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import open_clip
import PIL
import tokenizers
import torch
import transformers
from PIL import Image
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "server" / "tests" / "fixtures"
OUT = FIXTURES / "tiny-clip"  # set by --out
HIDDEN_ACT = "quick_gelu"  # set by --hidden-act
VIDEO = ROOT / "data" / "sample.mp4"
SEED = 0
FRAMES = [30, 200, 420]
FRAME_SIZE = (320, 180)
CONTEXT = 77
BOS, EOS = 49406, 49407

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
    # Longer than 77 tokens: truncated to 75 tokens between <|startoftext|> and <|endoftext|>.
    "a very long description of a photograph, " * 8
    + "showing an astronaut, a cat, a cup of coffee, a rocket, the deep field of the hubble "
    "telescope, a brick wall and some grass, all in one single frame of a video that goes on",
]


def bytes_to_unicode():
    """GPT-2/CLIP's reversible byte -> printable unicode character map (open_clip's order)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clip_vocab_and_merges():
    """vocab and merges built exactly as open_clip's SimpleTokenizer builds them."""
    bpe_path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]  # 48894 merges
    assert len(merges) == 48894 and all(len(m) == 2 for m in merges)
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    return {token: i for i, token in enumerate(vocab)}, merges


def make_tokenizer(tmp: Path):
    vocab, merges = clip_vocab_and_merges()
    src = tmp / "bpe"
    src.mkdir()
    (src / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (src / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))

    notes = {}
    # The documented pitfall: in transformers 5 the file-path keyword arguments are ignored by
    # the constructor (only from_pretrained converts files), giving a 3-token vocabulary.
    for label, build in [
        ("CLIPTokenizer(vocab_file=, merges_file=)",
         lambda: CLIPTokenizer(vocab_file=str(src / "vocab.json"), merges_file=str(src / "merges.txt"))),
        ("CLIPTokenizer.from_pretrained(folder with vocab.json, merges.txt)",
         lambda: CLIPTokenizer.from_pretrained(str(src))),
    ]:
        try:
            notes[label + " vocabulary size"] = len(build().get_vocab())
        except Exception as e:  # only informative
            notes[label + " vocabulary size"] = f"fails: {type(e).__name__}: {e}"[:200]
    # What is used: vocabulary and merges passed in memory.
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CONTEXT)
    assert len(tok.get_vocab()) == 49408, len(tok.get_vocab())
    saved = tmp / "saved"
    tok.save_pretrained(str(saved))

    # The saved tokenizer.json must carry the whole vocabulary and reload with both loaders.
    raw = tokenizers.Tokenizer.from_file(str(saved / "tokenizer.json"))
    assert raw.get_vocab_size() == 49408, raw.get_vocab_size()
    assert len(json.loads((saved / "tokenizer.json").read_text())["model"]["merges"]) == 48894
    fast = PreTrainedTokenizerFast(tokenizer_file=str(saved / "tokenizer.json"))
    assert len(fast.get_vocab()) == 49408
    reloaded = CLIPTokenizer.from_pretrained(str(saved))
    assert len(reloaded.get_vocab()) == 49408
    OUT.mkdir(parents=True, exist_ok=True)
    kept = []
    # tokenizer.json without indentation: same content, 1.7 MB instead of 3.6 MB.
    raw.save(str(OUT / "tokenizer.json"), pretty=False)
    assert json.loads((OUT / "tokenizer.json").read_text()) == json.loads((saved / "tokenizer.json").read_text())
    kept.append("tokenizer.json (minified)")
    for name in ["tokenizer_config.json", "special_tokens_map.json"]:
        if (saved / name).exists() and (saved / name).stat().st_size < 4096:
            shutil.copy(saved / name, OUT / name)
            kept.append(name)
    reloaded = CLIPTokenizer.from_pretrained(str(OUT))
    raw = tokenizers.Tokenizer.from_file(str(OUT / "tokenizer.json"))
    assert len(reloaded.get_vocab()) == 49408 and raw.get_vocab_size() == 49408
    notes["written by save_pretrained"] = sorted(p.name for p in saved.iterdir())
    notes["kept in the fixture"] = kept
    return reloaded, raw, notes


def check_tokens(tok, raw):
    """HF ids == open_clip's SimpleTokenizer ids (its padding is 0s, HF's is <|endoftext|>)."""
    ref = open_clip.tokenizer.SimpleTokenizer()
    ref_ids = ref(PROMPTS, context_length=CONTEXT)
    assert ref("a photo of a cat")[0][:7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    out = []
    for prompt, row in zip(PROMPTS, ref_ids.tolist()):
        unpadded = tok(prompt, truncation=True, max_length=CONTEXT)["input_ids"]
        full = tok(prompt)["input_ids"]
        padded = tok(prompt, padding="max_length", truncation=True, max_length=CONTEXT)
        ref_unpadded = row[: row.index(EOS) + 1]
        assert unpadded == ref_unpadded, (prompt, unpadded, ref_unpadded)
        assert raw.encode(prompt).ids == full, prompt  # the bare tokenizers library agrees
        ids, mask = padded["input_ids"], padded["attention_mask"]
        assert len(ids) == CONTEXT and ids[: len(unpadded)] == unpadded
        assert all(i == EOS for i in ids[len(unpadded) :]) and mask == [1] * len(unpadded) + [0] * (CONTEXT - len(unpadded))
        out.append(
            {
                "text": prompt,
                "input_ids": ids,
                "attention_mask": mask,
                "unpadded_ids": unpadded,
                "untruncated_length": len(full),
                "truncated": len(full) > CONTEXT,
            }
        )
    return out


def make_model():
    # Special ids: CLIP's BPE puts <|startoftext|> at 49406 and <|endoftext|> at 49407. OpenAI
    # and open_clip pad with 0, HF's tokenizer (and openai/clip-vit-base-patch32's config) pad
    # with <|endoftext|>: pad_token_id 49407 matches the tokenizer written here. eos_token_id 49407 (not the legacy 2) makes HF
    # pool at the first <|endoftext|>, which is also the argmax of the ids that candle pools at.
    # quick_gelu and layer_norm_eps 1e-5 are what OpenAI's CLIP uses and all candle supports.
    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  projection_dim=16, hidden_act=HIDDEN_ACT, layer_norm_eps=1e-5)
    text = dict(common, vocab_size=49408, max_position_embeddings=CONTEXT, bos_token_id=BOS,
                eos_token_id=EOS, pad_token_id=EOS)
    vision = dict(common, image_size=32, patch_size=8, num_channels=3)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    torch.manual_seed(SEED)
    model = CLIPModel(config).to(torch.float32).eval()
    model.save_pretrained(str(OUT), safe_serialization=True)
    return model


def extract_frames():
    frames = OUT / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in FRAMES:
        path = frames / f"frame_{n:03d}.png"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(VIDEO), "-vf",
             f"select=eq(n\\,{n}),scale={FRAME_SIZE[0]}:{FRAME_SIZE[1]}",
             "-frames:v", "1", "-pix_fmt", "rgb24", str(path)],
            check=True,
        )
        assert path.stat().st_size < 150_000, path
        paths.append(path)
    return paths


def features(out):
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def l2(v):
    return v / v.norm(dim=-1, keepdim=True)


def main():
    global OUT, HIDDEN_ACT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden-act", default="quick_gelu", choices=["quick_gelu", "gelu"])
    parser.add_argument("--out", default="tiny-clip", help="folder under server/tests/fixtures")
    args = parser.parse_args()
    OUT, HIDDEN_ACT = FIXTURES / args.out, args.hidden_act
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():  # start clean, keeping the hand-written README.md
        if old.name != "README.md":
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        tok, raw, tokenizer_notes = make_tokenizer(Path(tmp))
    prompts = check_tokens(tok, raw)
    model = make_model()

    # transformers 5's CLIPImageProcessor resizes with torchvision; the Pillow backend
    # (CLIPImageProcessorPil, the only one in transformers 4) is what server/src/embed/preprocess.rs
    # reproduces, so its output is the golden. Both write the same preprocessor_config.json keys.
    proc_kwargs = dict(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    pil_proc = transformers.CLIPImageProcessorPil(**proc_kwargs)
    tv_proc = transformers.CLIPImageProcessor(**proc_kwargs)
    tv_proc.save_pretrained(str(OUT))
    reread = transformers.CLIPImageProcessorPil.from_pretrained(str(OUT))
    assert reread.to_dict()["size"] == {"shortest_edge": 32} and reread.resample == PIL.Image.BICUBIC

    paths = extract_frames()
    images = [Image.open(p).convert("RGB") for p in paths]
    pixels = pil_proc(images=images, return_tensors="pt")["pixel_values"].to(torch.float32)
    pixels_tv = tv_proc(images=images, return_tensors="pt")["pixel_values"].to(torch.float32)
    assert tuple(pixels.shape) == (3, 3, 32, 32)

    ids = torch.tensor([p["input_ids"] for p in prompts])
    mask = torch.tensor([p["attention_mask"] for p in prompts])
    with torch.no_grad():
        img = features(model.get_image_features(pixel_values=pixels))
        txt = features(model.get_text_features(input_ids=ids, attention_mask=mask))
        txt_nomask = features(model.get_text_features(input_ids=ids))
        txt_unpadded = torch.cat([features(model.get_text_features(input_ids=torch.tensor([p["unpadded_ids"]]))) for p in prompts])
        logit_scale = model.logit_scale.exp().item()
    # Causal attention: what comes after <|endoftext|> never reaches the pooled position, so the
    # attention mask and the padding do not change the embedding (candle passes no mask).
    assert torch.allclose(txt, txt_nomask, atol=1e-6), (txt - txt_nomask).abs().max()
    assert torch.allclose(txt, txt_unpadded, atol=1e-5), (txt - txt_unpadded).abs().max()
    sims = l2(img) @ l2(txt).T

    pooling = []
    for p in prompts:
        eos_pos = p["input_ids"].index(EOS)  # HF (eos_token_id != 2): first <|endoftext|>
        argmax_pos = int(np.argmax(p["input_ids"]))  # candle: argmax of the ids (first maximum)
        p["hf_pooling"] = "first eos_token_id (49407) position"
        p["eos_position"] = eos_pos
        p["argmax_position"] = argmax_pos
        pooling.append(eos_pos == argmax_pos)
    assert all(pooling), pooling

    # The saved files reproduce the embeddings exactly.
    again = CLIPModel.from_pretrained(str(OUT)).eval()
    with torch.no_grad():
        assert torch.equal(features(again.get_image_features(pixel_values=pixels)), img)
        assert torch.equal(features(again.get_text_features(input_ids=ids, attention_mask=mask)), txt)

    for i, p in enumerate(prompts):
        p["embedding"] = txt[i].tolist()
        p["embedding_normalized"] = l2(txt[i]).tolist()
    golden = {
        "about": "made by scripts/make_tiny_clip.py; see README.md",
        "hidden_act": HIDDEN_ACT,
        "seed": SEED,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "open_clip_torch": importlib.metadata.version("open_clip_torch"),
            "pillow": PIL.__version__,
            "numpy": np.__version__,
            "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0],
        },
        "tokenizer_notes": tokenizer_notes,
        "context_length": CONTEXT,
        "logit_scale": logit_scale,
        "pixel_values_note": "CLIPImageProcessorPil (Pillow bicubic), shape [3,32,32] channel-first, flattened",
        "frames": [
            {
                "file": f"frames/{p.name}",
                "video_frame": n,
                "pixel_values_shape": [3, 32, 32],
                "pixel_values": pixels[i].flatten().tolist(),
                "torchvision_backend_max_abs_diff": float((pixels[i] - pixels_tv[i]).abs().max()),
                "embedding": img[i].tolist(),
                "embedding_normalized": l2(img[i]).tolist(),
            }
            for i, (p, n) in enumerate(zip(paths, FRAMES))
        ],
        "prompts": prompts,
        "similarity_note": "cosine similarity, rows = frames, columns = prompts",
        "similarity": sims.tolist(),
    }
    (OUT / "goldens.json").write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n")

    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    for f in sorted(OUT.rglob("*")):
        if f.is_file():
            print(f"{f.stat().st_size:>10}  {f.relative_to(OUT)}")
    print(f"{total:>10}  total")
    print("tokenizer:", json.dumps(tokenizer_notes))
    print("torchvision vs Pillow pixel_values max abs diff:", float((pixels - pixels_tv).abs().max()))
    print("truncated:", [p["truncated"] for p in prompts], "pooling eos == argmax:", pooling)


if __name__ == "__main__":
    main()
