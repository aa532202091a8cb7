"""course_utils.models.pretrained: the shipped MiniLM loaded offline, one layer in the course's MultiHeadAttention,
head scores, hooks, rollout and importance, with real numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils.models import pretrained as pt
from course_utils.models.multihead_attention import MultiHeadAttention


@pytest.fixture(scope="module")
def minilm():
    return pt.load_minilm("cpu")


@pytest.fixture(scope="module")
def batch(minilm):
    tokenizer, _ = minilm
    return pt.encode(tokenizer, ["The cat sat on the mat.", "A much longer sentence, with a comma and more words.",
                                 "Short one."])


def test_loads_offline_with_eager_attention(minilm, monkeypatch):
    tokenizer, model = minilm
    assert model.config._attn_implementation == "eager"
    assert (model.config.num_hidden_layers, model.config.num_attention_heads, model.config.hidden_size) == (6, 12, 384)
    assert not model.training
    assert (pt.model_path() / "model.safetensors").is_file()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = pt.load_minilm("cpu")[1]                 # loads again with the network switched off
    assert torch.equal(again.encoder.layer[0].attention.self.query.weight,
                       model.encoder.layer[0].attention.self.query.weight)


def test_run_returns_every_layers_attention(minilm, batch):
    _, model = minilm
    att, hidden = pt.run(model, batch)
    B, n = batch["input_ids"].shape
    assert att.shape == (6, B, 12, n, n) and hidden.shape == (7, B, n, 384)
    assert torch.allclose(att.sum(-1), torch.ones(6, B, 12, n), atol=1e-5)
    pad = ~batch["attention_mask"].bool()
    assert float(att.masked_select(pad[None, :, None, None, :]).abs().max()) == 0.0   # no weight on padding


def test_sentence_embeddings_equal_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    tokenizer, model = minilm
    sentences = pt.make_sentences(6, seed=1)
    ours = pt.sentence_embeddings(model, pt.encode(tokenizer, sentences))
    st = SentenceTransformer(str(pt.model_path()), device="cpu", local_files_only=True)
    theirs = torch.as_tensor(st.encode(sentences))
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.allclose(ours.norm(dim=-1), torch.ones(6), atol=1e-5)


def test_layer_as_mha_reproduces_every_layer(minilm, batch):
    _, model = minilm
    att, hidden = pt.run(model, batch)
    real = batch["attention_mask"].bool()
    outputs = {}
    handles = [model.encoder.layer[l].attention.output.dense.register_forward_hook(
        lambda m, i, o, l=l: outputs.__setitem__(l, o.detach())) for l in range(6)]
    with torch.no_grad():
        model(**batch)
    for h in handles:
        h.remove()
    for layer in range(6):
        mha = pt.layer_as_mha(model, layer)
        assert isinstance(mha, MultiHeadAttention) and not mha.training
        with torch.no_grad():
            out, w = mha(hidden[layer], hidden[layer], hidden[layer], key_padding_mask=real)
        assert torch.allclose(w, att[layer], atol=1e-5)
        assert torch.allclose(out[real], outputs[layer][real], atol=1e-4)
    with pytest.raises(ValueError, match="layer must be"):
        pt.layer_as_mha(model, 6)


def test_generated_sentences_are_seeded_and_distinct():
    a, b = pt.make_sentences(30, seed=3), pt.make_sentences(30, seed=3)
    assert a == b and len(set(a)) == 30 and a != pt.make_sentences(30, seed=4)
    assert all(s[0].isupper() and s[-1] in ".?" and " a a" not in s for s in a)
    pairs = pt.make_pairs(10, seed=0)
    assert len(pairs) == 10 and all(short.startswith(("A ", "An ")) for _, short in pairs)
    with pytest.raises(ValueError):
        pt.make_sentences(0, seed=0)


def test_real_token_mask():
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    assert pt.real_token_mask(mask).tolist() == [[False, True, True, False, False], [False, True, True, True, False]]


def _toy_attention(lengths, n, L=2, h=3):
    """Attention where head 0 of layer 0 looks at the previous token, head 1 at [CLS], head 2 is uniform."""
    B = len(lengths)
    att = torch.zeros(L, B, h, n, n)
    for b, m in enumerate(lengths):
        for i in range(n):
            att[:, b, 0, i, max(i - 1, 0)] = 1.0
            att[:, b, 1, i, 0] = 1.0
            att[:, b, 2, i, :m] = 1.0 / m
    mask = (torch.arange(n)[None] < torch.tensor(lengths)[:, None]).long()
    return att, mask


def test_head_scores_on_known_patterns():
    att, mask = _toy_attention([5, 3], 5)
    s = pt.head_scores(att, mask)
    assert set(s) == {"previous", "next", "self", "cls", "sep", "breadth"}
    assert torch.allclose(s["previous"][:, 0], torch.ones(2))
    assert torch.allclose(s["cls"][:, 1], torch.ones(2))
    # words: 3 in sentence 0, 1 in sentence 1; the first word of each looks back at [CLS]: 2 of 4 words
    assert torch.allclose(s["cls"][:, 0], torch.full((2,), 0.5))
    assert torch.allclose(s["breadth"][:, 2], torch.ones(2), atol=1e-6)
    assert torch.allclose(s["breadth"][:, :2], torch.zeros(2, 2), atol=1e-6)
    assert torch.allclose(s["sep"][:, 2], torch.full((2,), (3 / 5 + 1 / 3) / 4))
    assert pt.top_heads(s["cls"], 1)[0][1] == 1


def test_ablation_hook_zeroes_exactly_one_head(minilm, batch):
    _, model = minilm
    seen = {}
    dense = model.encoder.layer[2].attention.output.dense
    before = len(dense._forward_pre_hooks)
    # a forward hook sees the inputs after every pre-hook has changed them
    handle = dense.register_forward_hook(lambda m, args, out: seen.__setitem__("x", args[0].clone()))
    try:
        with pt.ablate_heads(model, [(2, 4), (2, 11)]), torch.no_grad():
            model(**batch)
        ablated = seen["x"]
        with torch.no_grad():
            model(**batch)
        full = seen["x"]
    finally:
        handle.remove()
    assert float(ablated[..., 128:160].abs().max()) == 0.0 and float(ablated[..., 352:].abs().max()) == 0.0
    keep = torch.ones(384, dtype=torch.bool)
    keep[128:160] = keep[352:] = False
    assert torch.equal(ablated[..., keep], full[..., keep])
    assert len(dense._forward_pre_hooks) == before                         # removed on exit
    with pytest.raises(ValueError):
        with pt.ablate_heads(model, [(6, 0)]):
            pass


def test_override_attention_identity_and_permutation(minilm, batch):
    _, model = minilm
    base = pt.sentence_embeddings(model, batch)
    before = [len(layer.attention.self._forward_hooks) for layer in model.encoder.layer]
    with pt.override_attention(model, lambda w: w):
        same = pt.sentence_embeddings(model, batch)
    assert torch.allclose(same, base, atol=1e-6)
    keys = batch["attention_mask"].bool()
    with pt.override_attention(model, lambda w: pt.uniform_weights(w, keys), layers=[5]):
        changed = pt.sentence_embeddings(model, batch)
    assert float((changed * base).sum(-1).min()) < 0.99
    assert [len(layer.attention.self._forward_hooks) for layer in model.encoder.layer] == before   # removed


def test_permute_keys_keeps_each_rows_weights_and_padding():
    g = torch.Generator().manual_seed(0)
    lengths = [5, 3]
    keys = torch.arange(5)[None] < torch.tensor(lengths)[:, None]
    w = torch.softmax(torch.randn(2, 4, 5, 5, generator=g).masked_fill(~keys[:, None, None], -float("inf")), -1)
    p = pt.permute_keys(w, keys, torch.Generator().manual_seed(1))
    assert torch.allclose(p.sort(-1).values, w.sort(-1).values)            # the same weights in each row
    assert float(p[1, ..., 3:].abs().max()) == 0.0                          # padding keys stay 0
    assert not torch.allclose(p, w)
    u = pt.uniform_weights(w, keys)
    assert torch.allclose(u[1, 0, 0], torch.tensor([1 / 3] * 3 + [0.0, 0.0]))


def test_rollout_matches_a_hand_computed_product():
    g = torch.Generator().manual_seed(2)
    att = torch.softmax(torch.randn(3, 2, 4, 5, 5, generator=g, dtype=torch.float64), -1)
    got = pt.attention_rollout(att, residual=0.3)
    eye = np.eye(5)
    for b in range(2):
        mats = [0.3 * eye + 0.7 * att[l, b].mean(0).numpy() for l in range(3)]
        assert np.allclose(got[b].numpy(), mats[2] @ mats[1] @ mats[0])
    assert torch.allclose(got.sum(-1), torch.ones(2, 5, dtype=torch.float64))
    assert torch.allclose(pt.attention_rollout(att, residual=1.0), torch.eye(5, dtype=torch.float64).expand(2, 5, 5))


def test_importance_measures(minilm):
    tokenizer, model = minilm
    pairs = pt.make_pairs(4, seed=0)
    long_ = pt.encode(tokenizer, [a for a, _ in pairs])
    target = pt.sentence_embeddings(model, pt.encode(tokenizer, [b for _, b in pairs]))
    grad = pt.gradient_importance(model, long_, target)
    loo = pt.leave_one_out_importance(model, long_, target)
    pad = ~long_["attention_mask"].bool()
    assert grad.shape == loo.shape == long_["input_ids"].shape
    assert float(grad[pad].abs().max()) == 0.0 and float(loo[pad].abs().max()) == 0.0
    assert float(loo[:, 0].abs().max()) == 0.0                              # [CLS] is never left out
    assert bool((grad[~pad] >= 0).all()) and float(grad.max()) > 0
    # leaving out the subject noun of a pair lowers the similarity to the short sentence naming it
    ids = long_["input_ids"][0].tolist()
    subject = tokenizer.convert_tokens_to_ids(pairs[0][1].split()[1])
    assert float(loo[0, ids.index(subject)]) > 0
    assert pt.rank_correlation(torch.arange(6.0), torch.arange(6.0) * 3) == pytest.approx(1.0)
    assert pt.rank_correlation(torch.arange(6.0), -torch.arange(6.0)) == pytest.approx(-1.0)


def test_run_refuses_a_model_without_attention_probabilities(minilm, batch):
    from transformers import AutoModel

    fused = AutoModel.from_pretrained(pt.model_path(), local_files_only=True, attn_implementation="sdpa").eval()
    with pytest.raises(RuntimeError, match="eager"):
        pt.run(fused, batch)
