#!/usr/bin/env python3
"""Writes server/tests/fixtures/tiny-siglip/ (SigLIP 1) or tiny-siglip2/ (SigLIP 2, fixed resolution):
a tiny SigLIP with random weights in Hugging Face layout (config.json, model.safetensors, tokenizer
files, preprocessor_config.json), three PNG frames from data/sample.mp4, and goldens.json with what
PyTorch + transformers compute for them (preprocessed pixels, image and text embeddings, token ids,
cosine similarities and sigmoid probabilities). The Rust implementation is checked against them.

Run by hand (not in CI); it needs ffmpeg and the virtual environment of make_tiny_clip.py plus
sentencepiece and protobuf:

    /tmp/tinyclip-venv/bin/pip install sentencepiece protobuf
    /tmp/tinyclip-venv/bin/python3 scripts/make_tiny_siglip.py --family siglip --out tiny-siglip
    /tmp/tinyclip-venv/bin/python3 scripts/make_tiny_siglip.py --family siglip2 --out tiny-siglip2

Nothing is downloaded: the real checkpoints' tokenizers are too big for a fixture, so each family
gets a tiny SentencePiece model trained here on generated English text, with the special-token ids
of the real one. SigLIP 1 (like google/siglip-base-patch16-224): a unigram model, `<pad>` 0, `</s>` 1,
`<unk>` 2, no bos, read by transformers' SiglipTokenizer (spiece.model). SigLIP 2 fixed resolution
(like google/siglip2-base-patch16-224, whose config.json says model_type "siglip"): a Gemma-style BPE
model with byte fallback, `<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3, `<mask>` 4, read by transformers'
GemmaTokenizer (tokenizer.json). The weights are random.
"""
import argparse
import importlib.metadata
import io
import json
import random
import re
import shutil
import string
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import PIL
import sentencepiece as spm
import tokenizers
import torch
import transformers
from PIL import Image
from safetensors import safe_open
from tokenizers import processors
from transformers import AutoTokenizer, GemmaTokenizer, SiglipConfig, SiglipModel, SiglipTokenizer
from transformers.convert_slow_tokenizer import SpmConverter
from transformers.image_utils import PILImageResampling

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "server" / "tests" / "fixtures"
VIDEO = ROOT / "data" / "sample.mp4"
SEED = 0
FRAMES = [30, 200, 420]
FRAME_SIZE = (320, 180)
CONTEXT = 64  # SigLIP's text length: max_position_embeddings, padding="max_length", max_length=64
VOCAB = 1000
LOGIT_SCALE = 10.0  # open_clip's SigLIP initialisation: logit_scale = log(10), logit_bias = -10
LOGIT_BIAS = -10.0

FAMILIES = {
    # transformers' models/siglip/convert_siglip_to_hf.py: SigLIP 1 gets SiglipTokenizer(spiece.model,
    # model_input_names=["input_ids"]) and SiglipImageProcessor(size=...) (bicubic, its default).
    "siglip": dict(like="google/siglip-base-patch16-224", pad=1, eos=1, bos=None, unk=2,
                   resample=PILImageResampling.BICUBIC),
    # The same script, SigLIP 2: GemmaTokenizerFast(add_bos_token=False, add_eos_token=True,
    # padding_side="right", do_lower_case=True, model_input_names=["input_ids"]) and
    # SiglipImageProcessor(size=..., resample=2), i.e. bilinear.
    "siglip2": dict(like="google/siglip2-base-patch16-224", pad=0, eos=1, bos=2, unk=3,
                    resample=PILImageResampling.BILINEAR),
}

PROMPTS = [
    # make_tiny_clip.py's prompts
    "a photo of a cat",
    "a brick wall",
    "stairs",
    "café crème brûlée",
    "一只猫",
    "🐈 on a 🧱 wall",
    "   a   spaced   prompt  ",
    "A ROCKET LAUNCH AT NIGHT",
    "coffee, please! (no sugar?) -- it's 3:45pm; thanks...",
    # Longer than 64 tokens in both families: truncated to 63 tokens and the eos.
    "a very long description of a photograph, " * 8
    + "showing an astronaut, a cat, a cup of coffee, a rocket, the deep field of the hubble "
    "telescope, a brick wall and some grass, all in one single frame of a video that goes on",
    # Canonicalisation: ASCII punctuation (string.punctuation, "_" included) and upper case, ...
    "Hello, World! It's a DOG'S LIFE: (really?)",
    "snake_case & {braces} [brackets] #hash @at 100% <angle>",
    # ... non-ASCII punctuation (not in string.punctuation, so kept), tabs and newlines.
    "«Guillemets», “curly quotes” — an em dash… ¡Olé!",
    "tabs\tand\nnewlines   and ÜMLAUTS",
]

WORDS = """a an the of on in at with and or to from by for over under near behind beside photo picture
image drawing painting sketch frame video clip shot still close-up view scene cat cats dog dogs kitten
puppy bird birds horse cow sheep fish rocket rockets astronaut astronauts coffee cup mug tea sugar milk
cream crème brûlée café cake bread table chair brick bricks wall walls stairs staircase step steps door
window roof house building street road city grass tree trees flower flowers garden field forest mountain
river lake sea beach sky cloud clouds night day morning evening sunset sunrise light dark shadow moon sun
star stars galaxy galaxies space telescope hubble deep field launch pad smoke fire flame engine red green
blue yellow orange purple black white gray grey brown pink golden silver big small tiny large old new
bright dim blurry sharp wet dry hot cold warm empty full man woman child people person group crowd
family friend running walking sitting standing sleeping flying floating eating drinking looking holding
one two three four five six seven eight nine ten single many some all every very long short description
photograph showing goes that which this there here please thanks no yes it is are was were be been being
has have had do does did spaced prompt text word words sentence story apple banana lemon grape cherry
peach pear plum melon strawberry tomato potato carrot onion pizza pasta soup salad sandwich burger cheese
butter egg eggs rice noodle chocolate cookie candy kitchen bedroom bathroom office school library museum
station airport harbour harbor bridge tower castle church temple market shop store restaurant hotel
hospital factory farm village town island desert car cars bus truck train plane airplane boat ship
bicycle bike motorcycle helicopter satellite computer phone camera screen keyboard book books paper
letter pen pencil clock watch lamp bottle glass shirt dress hat shoes coat jacket bag umbrella glasses
ring necklace snow rain storm wind fog ice frost thunder lightning rainbow weather winter summer spring
autumn happy sad angry calm quiet loud busy lonely tired hungry curious beautiful ugly strange famous
jumping swimming climbing dancing singing playing reading writing cooking driving riding talking smiling
laughing crying waiting watching opening closing carrying throwing catching mother father brother sister
baby girl boy teacher doctor farmer pilot soldier artist player elephant lion tiger bear wolf fox rabbit
mouse monkey giraffe zebra penguin owl eagle duck chicken spider butterfly bee snake turtle frog whale
dolphin shark octopus wooden metal plastic stone round square flat narrow wide shallow heavy north
south east west left right top bottom middle inside outside above below between across through monday
tuesday wednesday thursday friday saturday sunday january february march april may june july august
september october november december year month week hour minute second today tomorrow yesterday because
although while when where why how what who whose whom until since before after during quickly slowly
carefully suddenly finally always never often sometimes usually almost already history science music
art sport football tennis basketball game games movie movies pictures electricity machine machines robot
robots engineer engineering computers network networks international national wonderful interesting
important different possible available""".split()

SENTENCES = [
    "a photo of a cat sitting on a brick wall in the warm evening light",
    "an astronaut floating in space above the earth with the sun behind",
    "a cup of coffee on a wooden table next to a small cake and a spoon",
    "the deep field of the hubble telescope shows thousands of galaxies",
    "a rocket launch at night with smoke and fire lighting up the sky",
    "stairs leading up to an old door in a narrow street of the city",
    "green grass and some flowers growing in front of a red brick wall",
    "coffee please no sugar it is three forty five in the afternoon thanks",
    "café crème and a crème brûlée served on a white plate in paris",
    "a very long description of a photograph showing many things at once",
]


def corpus():
    """Deterministic English-like training text (captions made of WORDS, some capitalised and punctuated)."""
    rng = random.Random(SEED)
    lines = SENTENCES * 20
    lines += [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) for _ in range(6000)]
    for _ in range(300):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
        lines.append(words.capitalize() + rng.choice(".!?,;:") + " " + str(rng.randint(0, 2025)))
    return lines


def train_sentencepiece(**kwargs):
    """Trains in memory (no file paths end up in the model's trainer_spec), single-threaded."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus()), model_writer=model, vocab_size=VOCAB,
                                   num_threads=1, character_coverage=1.0, minloglevel=2, **kwargs)
    return model.getvalue()


def canonicalize(text):
    """SiglipTokenizer.canonicalize_text (big_vision's): lower(), drop string.punctuation, collapse \\s+, strip."""
    text = text.lower()
    text = text.translate(str.maketrans("", "", string.punctuation))
    return re.sub(r"\s+", " ", text).strip()


class SiglipTokenizerJsonConverter(SpmConverter):
    """transformers' SentencePiece converter (T5's, without extra ids): Precompiled (nmt_nfkc) normalizer,
    Metaspace pre-tokenizer, Unigram model, post-processor `$A </s>`."""

    def post_processor(self):
        eos = self.original_tokenizer.convert_tokens_to_ids("</s>")
        return processors.TemplateProcessing(single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"],
                                             special_tokens=[("</s>", eos)])


def make_siglip_tokenizer(tmp: Path, out: Path):
    # T5's English vocabulary (the real spiece.model): nmt_nfkc, dummy prefix, extra whitespace removed,
    # <pad> 0, </s> 1, <unk> 2, no <s>.
    model = train_sentencepiece(model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>")
    src = tmp / "spiece.model"
    src.write_bytes(model)
    tok = SiglipTokenizer(vocab_file=str(src), model_input_names=["input_ids"], model_max_length=CONTEXT)
    saved = tmp / "saved"
    tok.save_pretrained(str(saved))
    written = sorted(p.name for p in saved.iterdir())
    for name in written:
        shutil.copy(saved / name, out / name)
    raw = SiglipTokenizerJsonConverter(tok).converted()
    raw.save(str(out / "tokenizer.json"), pretty=True)
    notes = {
        "transformers class": "SiglipTokenizer (SentencePiece backend, reads spiece.model; ignores tokenizer.json)",
        "written by save_pretrained": written,
        "tokenizer.json": "made with transformers' SpmConverter (as for T5: Precompiled nmt_nfkc normalizer, "
                          "Metaspace, Unigram) plus post-processor `$A </s>`; no padding or truncation inside",
        "canonicalisation": "not in tokenizer.json: the caller lowercases (str.lower), deletes the 32 ASCII "
                            "characters of Python's string.punctuation, replaces each run of \\s+ with one "
                            "space and strips; SiglipTokenizer does this itself",
        "special tokens": {"pad": "</s> (1)", "eos": "</s> (1), appended", "unk": "<unk> (2)", "<pad> (0)": "unused", "bos": None},
        "model_input_names": ["input_ids"],
    }
    return sorted(written + ["tokenizer.json"]), notes


def make_siglip2_tokenizer(tmp: Path, out: Path):
    # Gemma's vocabulary style: BPE, byte fallback, digits split, no normalisation, no dummy prefix.
    model = train_sentencepiece(model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3,
                                pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
                                control_symbols=["<mask>"], byte_fallback=True, split_digits=True,
                                allow_whitespace_only_pieces=True, normalization_rule_name="identity",
                                add_dummy_prefix=False, remove_extra_whitespaces=False)
    src = tmp / "src"
    src.mkdir()
    (src / "tokenizer.model").write_bytes(model)
    tok = GemmaTokenizer.from_pretrained(
        str(src), add_bos_token=False, add_eos_token=True, padding_side="right", do_lower_case=True,
        model_input_names=["input_ids"], model_max_length=CONTEXT)
    saved = tmp / "saved"
    tok.save_pretrained(str(saved))
    written = sorted(p.name for p in saved.iterdir())
    config = json.loads((saved / "tokenizer_config.json").read_text())
    for key in ["vocab_file", "is_local", "local_files_only"]:  # paths of this machine
        config.pop(key, None)
    # transformers 5 leaves these out (the post-processor in tokenizer.json carries them); the real
    # siglip2 tokenizer_config.json, written by transformers 4, states them.
    config.update(add_bos_token=False, add_eos_token=True)
    config = dict(sorted(config.items()))
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    # The real siglip2 tokenizer.json carries fixed padding to 64 (the conversion script encoded with
    # padding="max_length", max_length=64 before saving) but no truncation: reproduce that.
    raw = tokenizers.Tokenizer.from_file(str(saved / "tokenizer.json"))
    raw.enable_padding(direction="right", pad_id=0, pad_type_id=0, pad_token="<pad>", length=CONTEXT)
    raw.save(str(out / "tokenizer.json"), pretty=True)
    (out / "tokenizer.model").write_bytes(model)
    notes = {
        "transformers class": "GemmaTokenizer (tokenizers backend, reads tokenizer.json); AutoTokenizer picks it "
                              "from tokenizer_config.json because config.json says model_type siglip",
        "written by save_pretrained": written,
        "kept in the fixture": ["tokenizer.json (padding Fixed 64 added)", "tokenizer_config.json (local paths removed, add_bos_token/add_eos_token added)",
                                "tokenizer.model (the SentencePiece source, for reference only)"],
        "tokenizer.json": "GemmaConverter's: normalizer Replace(' ' -> '▁'), pre-tokenizer Split(' ', merged_with_previous), "
                          "BPE with byte_fallback and fuse_unk, post-processor `$A <eos>` (add_bos_token False, "
                          "add_eos_token True); padding Fixed(64), Right, <pad> 0; truncation null",
        "canonicalisation": "not in tokenizer.json and not done by GemmaTokenizer although tokenizer_config.json says "
                            "do_lower_case: true: the caller lowercases (str.lower) and changes nothing else "
                            "(punctuation and whitespace stay)",
        "special tokens": {"pad": "<pad> (0)", "eos": "<eos> (1), appended", "bos": "<bos> (2), not added",
                           "unk": "<unk> (3)", "mask": "<mask> (4)"},
        "model_input_names": ["input_ids"],
    }
    return sorted(["tokenizer.json", "tokenizer_config.json", "tokenizer.model"]), notes


def caller_text(family, text):
    """What the caller passes to tokenizer.json (and, for siglip2, to GemmaTokenizer)."""
    return canonicalize(text) if family == "siglip" else text.lower()


def check_tokens(family, out: Path):
    fam = FAMILIES[family]
    tok = AutoTokenizer.from_pretrained(str(out))
    expected_class = "SiglipTokenizer" if family == "siglip" else "GemmaTokenizer"
    assert type(tok).__name__ == expected_class, type(tok)
    assert tok.pad_token_id == fam["pad"] and tok.eos_token_id == fam["eos"] and tok.padding_side == "right"
    assert len(tok.get_vocab()) == VOCAB, len(tok.get_vocab())
    raw = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    assert raw.get_vocab_size() == VOCAB, raw.get_vocab_size()
    sp_file = out / ("spiece.model" if family == "siglip" else "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=str(sp_file))
    assert sp.get_piece_size() == VOCAB

    bare = tokenizers.Tokenizer.from_str(raw.to_str())  # without the padding the file may carry
    bare.no_padding()
    bare.no_truncation()
    fixed = tokenizers.Tokenizer.from_str(raw.to_str())  # what the Rust side should configure
    fixed.enable_truncation(max_length=CONTEXT)
    fixed.enable_padding(direction="right", pad_id=fam["pad"], pad_token=tok.pad_token, length=CONTEXT)

    out_prompts = []
    for text in PROMPTS:
        caller = caller_text(family, text)
        hf_in = text if family == "siglip" else caller  # SiglipTokenizer canonicalises by itself
        if family == "siglip":
            assert tok.canonicalize_text(text) == caller, (text, caller)
            assert tok(caller)["input_ids"] == tok(text)["input_ids"], text
        elif caller != text:  # GemmaTokenizer does not lowercase
            assert tok(text)["input_ids"] != tok(caller)["input_ids"], text
        full = tok(hf_in)["input_ids"]
        unpadded = tok(hf_in, truncation=True, max_length=CONTEXT)["input_ids"]
        padded = tok(hf_in, padding="max_length", truncation=True, max_length=CONTEXT, return_attention_mask=True)
        assert "attention_mask" not in tok(hf_in)  # model_input_names = ["input_ids"], like the real ones
        ids, mask = padded["input_ids"], padded["attention_mask"]
        # big_vision's rule: SentencePiece ids of the caller's text, cut to 63, then the eos ("sticky" eos).
        ref = sp.encode(caller)[: CONTEXT - 1] + [fam["eos"]]
        assert unpadded == ref, (text, unpadded, ref)
        assert full[-1] == fam["eos"] and (fam["bos"] is None or fam["bos"] not in full)
        # The tokenizers library reads tokenizer.json and agrees, once the caller's text steps are done.
        assert bare.encode(caller).ids == full, (text, bare.encode(caller).ids, full)
        enc = fixed.encode(caller)
        assert enc.ids == ids and enc.attention_mask == mask, text
        if family == "siglip2":
            assert raw.encode(caller).ids[: len(full)] == full  # the file's own padding, no truncation
            if len(full) <= CONTEXT:
                assert raw.encode(caller).ids == ids
        assert len(ids) == CONTEXT and ids[: len(unpadded)] == unpadded
        assert all(i == fam["pad"] for i in ids[len(unpadded):])
        assert mask == [1] * len(unpadded) + [0] * (CONTEXT - len(unpadded))
        out_prompts.append({
            "text": text,
            "text_after_canonicalisation": caller,
            "input_ids": ids,
            "attention_mask": mask,
            "unpadded_ids": unpadded,
            "untruncated_length": len(full),
            "truncated": len(full) > CONTEXT,
            "eos_position": len(unpadded) - 1,
            "pooled_position": CONTEXT - 1,
            "pooled_token_id": ids[CONTEXT - 1],
        })
    assert sum(p["truncated"] for p in out_prompts) == 1
    return out_prompts, type(tok).__name__


def make_model(out: Path):
    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    # No token ids in text_config, as in the real checkpoints (convert_siglip_to_hf.py sets none): they keep
    # SiglipTextConfig's CLIP-era defaults (pad 1, bos 49406, eos 49407), which the model never uses and
    # which are wrong for SigLIP 2 (pad 0). The padding id has to come from the tokenizer files.
    text = dict(common, vocab_size=VOCAB, max_position_embeddings=CONTEXT, projection_size=32)
    vision = dict(common, image_size=32, patch_size=8, num_channels=3, vision_use_head=True)
    config = SiglipConfig(text_config=text, vision_config=vision)
    torch.manual_seed(SEED)
    model = SiglipModel(config).float().eval()
    # SiglipModel's initialisation sets every bias to 0 (or ~1e-6) and every LayerNorm to (1, 0), which
    # would leave those weights untested: give them random values too.
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
        model.logit_scale.fill_(float(np.log(LOGIT_SCALE)))
        model.logit_bias.fill_(LOGIT_BIAS)
    model.save_pretrained(str(out), safe_serialization=True)
    (out / "model.safetensors").chmod(0o644)  # save_pretrained writes it 0600
    return model, perturbed


def extract_frames(out: Path):
    frames = out / "frames"
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


def weight_table(out: Path):
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        return {k: list(f.get_slice(k).get_shape()) for k in sorted(f.keys())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", required=True, choices=sorted(FAMILIES))
    parser.add_argument("--out", help="folder under server/tests/fixtures (default tiny-siglip / tiny-siglip2)")
    args = parser.parse_args()
    family = args.family
    fam = FAMILIES[family]
    out = FIXTURES / (args.out or ("tiny-siglip" if family == "siglip" else "tiny-siglip2"))
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():  # start clean, keeping the hand-written README.md
        if old.name != "README.md":
            shutil.rmtree(old) if old.is_dir() else old.unlink()

    with tempfile.TemporaryDirectory() as tmp:
        if family == "siglip":
            tokenizer_files, tokenizer_notes = make_siglip_tokenizer(Path(tmp), out)
        else:
            tokenizer_files, tokenizer_notes = make_siglip2_tokenizer(Path(tmp), out)
    model, perturbed = make_model(out)  # config.json first: AutoTokenizer reads model_type
    prompts, tokenizer_class = check_tokens(family, out)
    tokenizer_notes["AutoTokenizer.from_pretrained(this folder)"] = tokenizer_class

    # Pillow backend = golden (what server/src/embed/preprocess.rs reproduces); torchvision backend =
    # transformers 5's default SiglipImageProcessor, whose preprocessor_config.json is saved.
    proc_kwargs = dict(size={"height": 32, "width": 32}, resample=fam["resample"])
    pil_proc = transformers.SiglipImageProcessorPil(**proc_kwargs)
    tv_proc = transformers.SiglipImageProcessor(**proc_kwargs)
    tv_proc.save_pretrained(str(out))
    reread = transformers.SiglipImageProcessorPil.from_pretrained(str(out))
    assert reread.size == {"height": 32, "width": 32} and reread.resample == fam["resample"]
    assert list(reread.image_mean) == [0.5] * 3 and list(reread.image_std) == [0.5] * 3
    assert not getattr(reread, "do_center_crop", False)
    assert json.loads((out / "preprocessor_config.json").read_text())["resample"] == int(fam["resample"])

    paths = extract_frames(out)
    images = [Image.open(p).convert("RGB") for p in paths]
    pixels = pil_proc(images=images, return_tensors="pt")["pixel_values"].to(torch.float32)
    pixels_tv = tv_proc(images=images, return_tensors="pt")["pixel_values"].to(torch.float32)
    assert tuple(pixels.shape) == (3, 3, 32, 32)

    ids = torch.tensor([p["input_ids"] for p in prompts])
    mask = torch.tensor([p["attention_mask"] for p in prompts])
    with torch.no_grad():
        img = features(model.get_image_features(pixel_values=pixels))
        # The real checkpoints' tokenizers return no attention_mask (model_input_names ["input_ids"]):
        # the text tower runs unmasked, as SigLIP was trained, and pools the last position (63).
        txt = features(model.get_text_features(input_ids=ids))
        txt_masked = features(model.get_text_features(input_ids=ids, attention_mask=mask))
        txt_unpadded = [features(model.get_text_features(input_ids=torch.tensor([p["unpadded_ids"]])))[0]
                        for p in prompts]
        outputs = model(input_ids=ids, pixel_values=pixels)
        logit_scale = model.logit_scale.exp().item()
        logit_bias = model.logit_bias.item()
    assert abs(logit_scale - LOGIT_SCALE) < 1e-5 and logit_bias == LOGIT_BIAS
    with torch.no_grad():
        sims = l2(img) @ l2(txt).T
        logits = sims * model.logit_scale.exp() + model.logit_bias
        probs = torch.sigmoid(logits)
    assert torch.allclose(logits, outputs.logits_per_image, atol=1e-5), (logits - outputs.logits_per_image).abs().max()
    assert torch.allclose(probs, torch.sigmoid(outputs.logits_per_image), atol=1e-7)

    # Padding and masking change the embedding (bidirectional attention, last-position pooling).
    unpadded_diffs = [float((txt[i] - txt_unpadded[i]).abs().max()) for i in range(len(prompts))]
    for i, p in enumerate(prompts):
        if not p["truncated"]:
            assert unpadded_diffs[i] > 1e-3, (p["text"], unpadded_diffs[i])
        else:  # exactly 64 tokens, nothing padded
            assert unpadded_diffs[i] < 1e-5
    mask_diff = float((txt - txt_masked).abs().max())
    assert mask_diff > 1e-3
    first = 0
    padding_check = {
        "note": "get_text_features of the same prompt without padding (input_ids = unpadded_ids, length "
                "len(unpadded_ids)): the pooled position is then the eos instead of position 63, so the "
                "embedding differs; the goldens always use the 64 padded ids",
        "prompt": prompts[first]["text"],
        "unpadded_embedding": txt_unpadded[first].tolist(),
        "max_abs_diff_to_padded": unpadded_diffs[first],
        "cosine_to_padded": float(l2(txt[first]) @ l2(txt_unpadded[first])),
        "max_abs_diff_all_prompts": max(unpadded_diffs),
    }

    # The saved files reproduce the embeddings exactly.
    again = SiglipModel.from_pretrained(str(out)).eval()
    with torch.no_grad():
        assert torch.equal(features(again.get_image_features(pixel_values=pixels)), img)
        assert torch.equal(features(again.get_text_features(input_ids=ids)), txt)

    for i, p in enumerate(prompts):
        p["embedding"] = txt[i].tolist()
        p["embedding_normalized"] = l2(txt[i]).tolist()
        p["embedding_with_attention_mask"] = txt_masked[i].tolist()
    resample_name = PILImageResampling(fam["resample"]).name.lower()
    golden = {
        "about": f"made by scripts/make_tiny_siglip.py --family {family}; see README.md",
        "family": family,
        "model_type": "siglip",
        "like": fam["like"],
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
        "tokenizer_notes": tokenizer_notes,
        "context_length": CONTEXT,
        "pad_token_id": fam["pad"],
        "eos_token_id": fam["eos"],
        "logit_scale": logit_scale,
        "logit_bias": logit_bias,
        "logit_note": "logits = cosine * logit_scale + logit_bias (logit_scale is exp of the stored parameter); "
                      "probability = sigmoid(logits)",
        "perturbed_weights_note": "after SiglipModel(config) every bias got N(0, 0.1^2) and every LayerNorm weight "
                                  "1 + N(0, 0.1^2) (torch.Generator seeded 1), so they are not 0 / 1",
        "pixel_values_note": f"SiglipImageProcessorPil (Pillow {resample_name}, squash to 32x32, no crop, x/255, "
                             "(x-0.5)/0.5), shape [3,32,32] channel-first, flattened",
        "text_embedding_note": "embedding = get_text_features(input_ids) without attention_mask (as SigLIP was trained "
                               "and as the tokenizers, which return no attention_mask, make transformers run it): "
                               "pooled at position 63. embedding_with_attention_mask = the same with the mask "
                               f"passed (differs, max abs diff {mask_diff:.3g}); not what the real checkpoints do",
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
        "padding_check": padding_check,
        "similarity_note": "cosine similarity, rows = frames, columns = prompts",
        "similarity": sims.tolist(),
        "probability_note": "sigmoid(similarity * logit_scale + logit_bias), rows = frames, columns = prompts; "
                            "equals torch.sigmoid(model(input_ids, pixel_values).logits_per_image)",
        "probability": probs.tolist(),
    }
    (out / "goldens.json").write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n")

    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    for f in sorted(out.rglob("*")):
        if f.is_file():
            print(f"{f.stat().st_size:>10}  {f.relative_to(out)}")
    print(f"{total:>10}  total")
    for name, shape in weight_table(out).items():
        print(f"  {name} {shape}")
    print("perturbed:", len(perturbed), "tensors")
    print("tokenizer:", json.dumps(tokenizer_notes, ensure_ascii=False))
    print("torchvision vs Pillow pixel_values max abs diff:", float((pixels - pixels_tv).abs().max()))
    print("truncated:", [p["truncated"] for p in prompts])
    print("untruncated lengths:", [p["untruncated_length"] for p in prompts])
    print("padding check:", {k: v for k, v in padding_check.items() if k != "unpadded_embedding"})
    print("attention mask max abs diff:", mask_diff)
    print("similarity range:", float(sims.min()), float(sims.max()), "probability range:", float(probs.min()), float(probs.max()))


if __name__ == "__main__":
    main()
