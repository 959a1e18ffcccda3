#!/usr/bin/env python3
"""Goldens for the explanation heatmaps: gradient-weighted attention relevance (Chefer, Gur and
Wolf, ICCV 2021) computed with PyTorch + transformers on the tiny fixtures, written to
server/tests/fixtures/<fixture>/relevance.json. server/tests/it/explain.rs holds ours (candle)
against them for every start layer.

The method, as engine/src/embed/local/explain.rs computes it: the score is the model's logit for
the prompt (logit_scale * cos(image, text); SigLIP adds logit_bias). For each vision layer l from
start_layer to the last: A_l = the attention probabilities (heads x tokens x tokens, eager
attention), G_l = d score / d A_l (autograd), Abar_l = mean over heads of max(G_l * A_l, 0);
R = I, then R = R + Abar_l @ R. CLIP: the class token's row of R without the class token.
SigLIP (no class token): the pooling head's row r = mean over heads of max(G * A, 0) for the
head's attention A (its probe over the patches) and its gradient, applied to R: r @ R. The head
is recomputed here from its own weights (nn.MultiheadAttention gives no per-head weights to
differentiate); the script checks that it gives the model's image embedding.

Pixels and text embeddings are the fixtures' own goldens (transformers' processor and text
tower): the test computes them itself and their parity is checked elsewhere.

Run by hand (CI does not need Python):

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch transformers safetensors
    /tmp/torchvenv/bin/python scripts/make_relevance_goldens.py
"""

import json
import pathlib

import torch
import transformers
from transformers import AutoModel

ROOT = pathlib.Path(__file__).resolve().parent.parent / "server/tests/fixtures"
FIXTURES = ["tiny-clip", "tiny-clip-gelu", "tiny-siglip", "tiny-siglip2"]
FRAMES = 2
PROMPTS = 2


def siglip_embedding(model, pixel_values):
    """The image embedding, with the encoder's attention and the pooling head's (per head)."""
    vm = model.vision_model
    # last_hidden_state is after post_layernorm; the head is recomputed from it below.
    encoded = vm(pixel_values=pixel_values, output_attentions=True)
    attentions = list(encoded.attentions)
    h = encoded.last_hidden_state
    head = vm.head
    mha = head.attention
    batch, patches, e = h.shape
    heads = mha.num_heads
    d = e // heads
    w, b = mha.in_proj_weight, mha.in_proj_bias
    probe = head.probe.repeat(batch, 1, 1)
    q = probe @ w[:e].T + b[:e]
    k = h @ w[e : 2 * e].T + b[e : 2 * e]
    v = h @ w[2 * e :].T + b[2 * e :]
    split = lambda t, n: t.reshape(batch, n, heads, d).transpose(1, 2)
    q, k, v = split(q, 1), split(k, patches), split(v, patches)
    a_head = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)
    out = (a_head @ v).transpose(1, 2).reshape(batch, 1, e)
    out = mha.out_proj(out)
    out = out + head.mlp(head.layernorm(out))
    return out[:, 0], attentions, a_head


def clip_embedding(model, pixel_values):
    out = model.vision_model(pixel_values=pixel_values, output_attentions=True)
    return model.visual_projection(out.pooler_output), list(out.attentions), None


def relevance(model, siglip, pixel_values, text, start_layer):
    embed = siglip_embedding if siglip else clip_embedding
    image, attentions, a_head = embed(model, pixel_values)
    cos = (image / image.norm(dim=-1, keepdim=True) * text).sum()
    logit = model.logit_scale.exp() * cos
    if siglip:
        logit = logit + model.logit_bias
    logit = logit.reshape(())
    used = attentions[start_layer:]
    targets = used + ([a_head] if siglip else [])
    grads = torch.autograd.grad(logit, targets)
    tokens = used[0].shape[-1]
    r = torch.eye(tokens)
    for a, g in zip(used, grads):
        cam = (g * a).clamp(min=0).mean(dim=1)[0]
        r = r + cam @ r
    if siglip:
        head = (grads[-1] * a_head).clamp(min=0).mean(dim=1)[0]  # [1, tokens]
        row = (head @ r)[0]
    else:
        row = r[0, 1:]
    return row.detach(), float(logit.detach()), float(cos.detach())


def main():
    torch.set_default_dtype(torch.float32)
    for name in FIXTURES:
        folder = ROOT / name
        goldens = json.loads((folder / "goldens.json").read_text())
        model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
        siglip = goldens.get("family") == "siglip" or "siglip" in model.config.model_type
        layers = model.config.vision_config.num_hidden_layers
        cases = []
        for frame in goldens["frames"][:FRAMES]:
            shape = frame["pixel_values_shape"]
            pixels = torch.tensor(frame["pixel_values"]).reshape(1, *shape)
            if siglip:
                with torch.no_grad():
                    check = model.get_image_features(pixel_values=pixels)
                    check = getattr(check, "pooler_output", check)
                    ours, _, _ = siglip_embedding(model, pixels)
                assert torch.allclose(ours, check, atol=1e-5), (name, (ours - check).abs().max())
            for prompt in goldens["prompts"][:PROMPTS]:
                text = torch.tensor(prompt["embedding_normalized"]).reshape(1, -1)
                for start_layer in range(layers):
                    row, logit, cos = relevance(model, siglip, pixels, text, start_layer)
                    side = round(len(row) ** 0.5)
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
            "about": "gradient-weighted attention relevance (Chefer et al. 2021) by PyTorch + transformers, eager attention; scripts/make_relevance_goldens.py",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "layers": layers,
            "cases": cases,
        }
        (folder / "relevance.json").write_text(json.dumps(out, indent=1) + "\n")
        print(name, len(cases), "cases; first:", cases[0]["relevance"][:4], "logit", cases[0]["logit"])


if __name__ == "__main__":
    main()
