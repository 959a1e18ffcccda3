#!/usr/bin/env python3
"""Goldens for the explanation heatmaps of the tiny PE-Core fixture: gradient-weighted attention
relevance (Chefer, Gur and Wolf, ICCV 2021) computed with PyTorch + open_clip + timm, written to
server/tests/fixtures/tiny-pe-core/relevance.json in the format of scripts/make_relevance_goldens.py
(same keys, so server/tests/it/explain.rs reads it with the same code).

The method is that of make_relevance_goldens.py. The score is the model's logit for the prompt,
exp(logit_scale) * cos(image, text) (PE-Core has no logit_bias). For each vision block l from
start_layer to the last: A_l = the block's attention probabilities [heads, T, T] (T = 1 class
token + the patches; the softmax output that multiplies v), G_l = d score / d A_l (autograd),
Abar_l = mean over heads of max(G_l * A_l, 0); R = I, then R = R + Abar_l @ R. PE-Core pools with
timm's AttentionPoolLatent (one learned latent query, 8 heads, over all T tokens, class token
included), handled like SigLIP's pooling head: r = mean over heads of max(G_h * A_h, 0) for the
pool's attention A_h [heads, 1, T] and its gradient, and the map is (r @ R)[0, 1:] (the class
token's entry dropped), the patch grid row-major.

The attention probabilities come from timm's own eager code path: fused_attn is switched off on
every AttentionRope block and on the AttentionPoolLatent head, and Tensor.softmax is wrapped
while each of those modules runs, so that the probabilities it returns are kept (with their
autograd graph). The script checks that this eager forward gives the fused forward's image
embedding (to 1e-6), that the pixels of goldens.json are what the fixture's own open_clip
preprocess makes of the frames, that goldens.json's text embeddings are what the model computes,
and that the logits agree with goldens.json's.

Pixels and text embeddings are those of the fixture's goldens.json (what the Rust test feeds).
The tiny timm model `vit_pe_core_test_patch8_32` is registered by importing
scripts/make_tiny_open_clip.py as a module (its main() does not run).

Run by hand (CI does not need Python), in the virtual environment of make_tiny_open_clip.py:

    /tmp/ocvenv/bin/python3 scripts/make_pe_relevance_goldens.py
"""

import contextlib
import importlib.metadata
import importlib.util
import json
import pathlib
import sys

import open_clip
import timm
import torch
from PIL import Image
from timm.layers import AttentionPoolLatent, AttentionRope

SCRIPTS = pathlib.Path(__file__).resolve().parent
FOLDER = SCRIPTS.parent / "server/tests/fixtures/tiny-pe-core"
FRAMES = 2  # as make_relevance_goldens.py: the first two frames and the first two prompts
PROMPTS = 2


def import_fixture_script():
    """scripts/make_tiny_open_clip.py as a module: registers the timm model and open_clip configs."""
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location("make_tiny_open_clip", SCRIPTS / "make_tiny_open_clip.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import does; timm's register_model looks it up there
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def captured_attention(modules):
    """Within the block: the modules run timm's eager attention, and captured[module] is the list
    of the attention probabilities (softmax outputs) each call produced, graph attached."""
    captured = {m: [] for m in modules}
    active = []
    original_softmax = torch.Tensor.softmax

    def softmax(self, *args, **kwargs):
        out = original_softmax(self, *args, **kwargs)
        if active:
            captured[active[-1]].append(out)
        return out

    def enter(module, _inputs):
        active.append(module)

    def leave(module, _inputs, _output):
        assert active.pop() is module

    saved = {m: m.fused_attn for m in modules}
    handles = []
    for m in modules:
        m.fused_attn = False
        handles.append(m.register_forward_pre_hook(enter))
        handles.append(m.register_forward_hook(leave))
    torch.Tensor.softmax = softmax
    try:
        yield captured
    finally:
        torch.Tensor.softmax = original_softmax
        for h in handles:
            h.remove()
        for m, fused in saved.items():
            m.fused_attn = fused


def eager_embedding(model, pixels):
    """The image embedding by timm's eager attention, the blocks' attention probabilities
    [1, heads, T, T] each, and the pool's [1, heads, 1, T]."""
    trunk = model.visual.trunk
    blocks = [b.attn for b in trunk.blocks]
    pool = trunk.attn_pool
    assert all(isinstance(a, AttentionRope) for a in blocks), [type(a) for a in blocks]
    assert isinstance(pool, AttentionPoolLatent), type(pool)
    assert not model.training
    with captured_attention(blocks + [pool]) as captured:
        image = model.encode_image(pixels)
    for m, probs in captured.items():
        assert len(probs) == 1, (type(m).__name__, len(probs))  # one softmax per module call
    attentions = [captured[a][0] for a in blocks]
    a_head = captured[pool][0]
    tokens = 1 + trunk.patch_embed.num_patches
    heads = blocks[0].num_heads
    for a in attentions:
        assert a.shape == (1, heads, tokens, tokens), a.shape
    assert a_head.shape == (1, pool.num_heads, 1, tokens), a_head.shape
    return image, attentions, a_head


def relevance(model, pixels, text, start_layer):
    image, attentions, a_head = eager_embedding(model, pixels)
    cos = (image / image.norm(dim=-1, keepdim=True) * text).sum()
    assert getattr(model, "logit_bias", None) is None
    logit = (model.logit_scale.exp() * cos).reshape(())
    used = attentions[start_layer:]
    grads = torch.autograd.grad(logit, used + [a_head])
    tokens = used[0].shape[-1]
    r = torch.eye(tokens)
    for a, g in zip(used, grads):
        cam = (g * a).clamp(min=0).mean(dim=1)[0]  # [T, T]
        r = r + cam @ r
    head = (grads[-1] * a_head).clamp(min=0).mean(dim=1)[0]  # [1, T]
    row = (head @ r)[0, 1:]  # the class token's entry dropped
    return row.detach(), float(logit.detach()), float(cos.detach())


def main():
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(1)  # deterministic CPU reductions, as make_tiny_open_clip.py
    fixture_script = import_fixture_script()
    assert fixture_script.TINY_PE_TIMM in timm.list_models(fixture_script.TINY_PE_TIMM)

    goldens = json.loads((FOLDER / "goldens.json").read_text())
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{FOLDER}")
    model.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{FOLDER}")
    layers = len(model.visual.trunk.blocks)
    assert abs(float(model.logit_scale.detach().exp()) - goldens["logit_scale"]) <= 1e-5

    frames = goldens["frames"][:FRAMES]
    prompts = goldens["prompts"][:PROMPTS]
    # The text embeddings: goldens.json's (the test's input), checked against the model's.
    with torch.no_grad():
        ours = model.encode_text(tokenizer([p["text"] for p in prompts]), normalize=True)
    texts = []
    for p, mine in zip(prompts, ours):
        text = torch.tensor(p["embedding_normalized"])
        assert (mine - text).abs().max() <= 1e-6, (p["text"], (mine - text).abs().max())
        texts.append(text.reshape(1, -1))

    cases = []
    max_embedding_diff = 0.0
    for fi, frame in enumerate(frames):
        shape = frame["pixel_values_shape"]
        pixels = torch.tensor(frame["pixel_values"]).reshape(1, *shape)
        # goldens.json's pixels are the fixture's own preprocess of the frame
        image = Image.open(FOLDER / frame["file"]).convert("RGB")
        assert torch.equal(preprocess(image).unsqueeze(0), pixels), frame["file"]
        # the eager (captured-probability) forward gives the fused forward's embedding
        with torch.no_grad():
            fused = model.encode_image(pixels)
        eager, _, _ = eager_embedding(model, pixels)
        diff = float((eager.detach() - fused).abs().max())
        assert diff <= 1e-6, (frame["file"], diff)
        max_embedding_diff = max(max_embedding_diff, diff)
        assert (fused[0] - torch.tensor(frame["embedding"])).abs().max() <= 1e-5, frame["file"]

        for pi, (prompt, text) in enumerate(zip(prompts, texts)):
            for start_layer in range(layers):
                row, logit, cos = relevance(model, pixels, text, start_layer)
                expected = goldens["logits"][fi][pi]
                assert abs(logit - expected) <= 1e-5 * max(1.0, abs(expected)), (logit, expected)
                assert row.max() > 0, "an all-zero map tests nothing"
                side = round(len(row) ** 0.5)
                assert side * side == len(row)
                cases.append(
                    {
                        "frame": frame["file"],
                        "prompt": prompt["text"],
                        "start_layer": start_layer,
                        "logit": logit,
                        "cosine": cos,
                        "rows": side,
                        "cols": len(row) // side,
                        "relevance": [float(x) for x in row],
                    }
                )
    out = {
        "about": "gradient-weighted attention relevance (Chefer et al. 2021) by PyTorch + open_clip + timm, "
        "eager attention (AttentionRope blocks, AttentionPoolLatent head as SigLIP's); "
        "scripts/make_pe_relevance_goldens.py",
        "versions": {
            "torch": torch.__version__,
            "open_clip_torch": importlib.metadata.version("open_clip_torch"),
            "timm": timm.__version__,
        },
        "layers": layers,
        "cases": cases,
    }
    (FOLDER / "relevance.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"eager vs fused image embedding: max abs diff {max_embedding_diff:.3e}")
    print(FOLDER.name, len(cases), "cases; first:", cases[0]["relevance"][:4], "logit", cases[0]["logit"])


if __name__ == "__main__":
    main()
