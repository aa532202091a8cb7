"""Answers to the checks of exercises/03_attention_seq2seq.ipynb (see __init__.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from check_answers import right, wrong

# ----------------------------------------------------------------------------- 03.additive_attention


def _scores(query, keys, W_q, W_k, v):
    return torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v        # (B, S)


def att_float64_numpy(query, keys, mask, W_q, W_k, v):
    q, k, Wq, Wk, vv = (x.double() for x in (query, keys, W_q, W_k, v))
    weights = torch.softmax(_scores(q, k, Wq, Wk, vv).masked_fill(~mask, float("-inf")), dim=-1)
    return (weights.unsqueeze(1) @ k).squeeze(1).numpy(), weights.numpy()


def att_renormalised_list(query, keys, mask, W_q, W_k, v):
    """Another algorithm: shift each row by its largest real score, exp, zero the padding, renormalise."""
    scores = _scores(query, keys, W_q, W_k, v)
    top = scores.masked_fill(~mask, float("-inf")).max(dim=1, keepdim=True).values
    e = torch.exp((scores - top).masked_fill(~mask, float("-inf")))
    weights = e / e.sum(dim=1, keepdim=True)
    return [torch.einsum("bs,bsh->bh", weights, keys), weights]


def att_naive_exp(query, keys, mask, W_q, W_k, v):
    e = torch.exp(_scores(query, keys, W_q, W_k, v)) * mask
    weights = e / e.sum(-1, keepdim=True)
    return torch.einsum("bs,bsh->bh", weights, keys), weights


def att_global_shift(query, keys, mask, W_q, W_k, v):
    scores = _scores(query, keys, W_q, W_k, v)
    e = torch.exp(scores - scores.max()) * mask                            # one maximum for the whole batch
    weights = e / e.sum(-1, keepdim=True)
    return torch.einsum("bs,bsh->bh", weights, keys), weights


def att_global_shift_float64(query, keys, mask, W_q, W_k, v):
    scores = _scores(*(x.double() for x in (query, keys, W_q, W_k, v)))
    e = torch.exp(scores - scores.max()) * mask                            # float64 survives a shift of ~700
    weights = e / e.sum(-1, keepdim=True)
    return torch.einsum("bs,bsh->bh", weights, keys.double()), weights


def att_finite_fill(query, keys, mask, W_q, W_k, v):
    weights = torch.softmax(_scores(query, keys, W_q, W_k, v).masked_fill(~mask, -100.0), dim=-1)
    return torch.einsum("bs,bsh->bh", weights, keys), weights


def att_no_tanh(query, keys, mask, W_q, W_k, v):
    scores = ((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.einsum("bs,bsh->bh", weights, keys), weights


def att_inverted_mask(query, keys, mask, W_q, W_k, v):
    weights = torch.softmax(_scores(query, keys, W_q, W_k, v).masked_fill(mask, float("-inf")), dim=-1)
    return torch.einsum("bs,bsh->bh", weights, keys), weights


def att_context_unmasked(query, keys, mask, W_q, W_k, v):
    scores = _scores(query, keys, W_q, W_k, v)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.einsum("bs,bsh->bh", torch.softmax(scores, -1), keys), weights


def att_zeroes_keys_in_place(query, keys, mask, W_q, W_k, v):
    keys.masked_fill_(~mask.unsqueeze(-1), 0.0)                           # "clean" the padding: changes the input
    weights = torch.softmax(_scores(query, keys, W_q, W_k, v).masked_fill(~mask, float("-inf")), dim=-1)
    return torch.einsum("bs,bsh->bh", weights, keys), weights


def att_batch_of_two(query, keys, mask, W_q, W_k, v):
    scores = torch.tanh((query @ W_q).view(2, 1, -1) + keys @ W_k) @ v     # B = 2 taken from the example
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.einsum("bs,bsh->bh", weights, keys), weights


def att_softmax_over_batch(query, keys, mask, W_q, W_k, v):
    weights = torch.softmax(_scores(query, keys, W_q, W_k, v).masked_fill(~mask, float("-inf")), dim=0)
    return torch.einsum("bs,bsh->bh", weights, keys), weights


# ----------------------------------------------------------------------------- 03.decoder_step


def step_list_float64(decoder, token, state, keys, mask):
    context, weights = decoder.attention(state, keys, mask)
    new_state = decoder.rnn(torch.cat([decoder.embed(token), context], dim=-1), state)
    logits = decoder.out(torch.cat([new_state, context], dim=-1))
    return [logits.double().numpy(), new_state.double(), weights.double().numpy()]


def step_by_hand(decoder, token, state, keys, mask):
    """Another algorithm: the GRU cell and the output layer written out from their weights, in float64."""
    context, weights = decoder.attention(state, keys, mask)
    x = torch.cat([decoder.embed.weight[token], context], dim=-1).double()
    h = state.double()
    rnn = decoder.rnn
    gi = x @ rnn.weight_ih.double().T + rnn.bias_ih.double()
    gh = h @ rnn.weight_hh.double().T + rnn.bias_hh.double()
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    new_state = (1 - z) * n + z * h
    logits = torch.cat([new_state, context.double()], -1) @ decoder.out.weight.double().T + decoder.out.bias.double()
    return logits, new_state, weights


def step_attends_with_new_state(decoder, token, state, keys, mask):
    context, _ = decoder.attention(state, keys, mask)
    new_state = decoder.rnn(torch.cat([decoder.embed(token), context], dim=-1), state)
    context, weights = decoder.attention(new_state, keys, mask)            # Luong's order, not Bahdanau's
    logits = decoder.out(torch.cat([new_state, context], dim=-1))
    return logits, new_state, weights


def step_no_mask(decoder, token, state, keys, mask):
    context, weights = decoder.attention(state, keys, torch.ones_like(mask))
    new_state = decoder.rnn(torch.cat([decoder.embed(token), context], dim=-1), state)
    logits = decoder.out(torch.cat([new_state, context], dim=-1))
    return logits, new_state, weights


def step_gru_input_swapped(decoder, token, state, keys, mask):
    context, weights = decoder.attention(state, keys, mask)
    new_state = decoder.rnn(torch.cat([context, decoder.embed(token)], dim=-1), state)
    logits = decoder.out(torch.cat([new_state, context], dim=-1))
    return logits, new_state, weights


def step_output_from_old_state(decoder, token, state, keys, mask):
    context, weights = decoder.attention(state, keys, mask)
    new_state = decoder.rnn(torch.cat([decoder.embed(token), context], dim=-1), state)
    logits = decoder.out(torch.cat([state, context], dim=-1))
    return logits, new_state, weights


def step_output_swapped(decoder, token, state, keys, mask):
    context, weights = decoder.attention(state, keys, mask)
    new_state = decoder.rnn(torch.cat([decoder.embed(token), context], dim=-1), state)
    logits = decoder.out(torch.cat([context, new_state], dim=-1))
    return logits, new_state, weights


def step_updates_state_in_place(decoder, token, state, keys, mask):
    context, weights = decoder.attention(state, keys, mask)
    with torch.no_grad():
        state.copy_(decoder.rnn(torch.cat([decoder.embed(token), context], dim=-1), state))
    logits = decoder.out(torch.cat([state, context], dim=-1))
    return logits, state.clone(), weights


def step_calls_finished_step(decoder, token, state, keys, mask):
    return decoder.step(token, state, keys, mask)


# ----------------------------------------------------------------------------- 03.greedy_decode


def _run(model, src, src_len, max_len, first, feed_back=True, carry=True):
    keys, s0, mask, _ = model.encode(src, src_len)
    token = torch.full((src.shape[0],), first, dtype=torch.long)
    state, ids, weights = s0, [], []
    for _ in range(max_len):
        logits, new_state, w = model.decoder.step(token, state, keys, mask)
        state = new_state if carry else s0
        prediction = logits.argmax(-1)
        token = prediction if feed_back else token
        ids.append(prediction)
        weights.append(w)
    return ids, weights


@torch.no_grad()
def greedy_lists(model, src, src_len, max_len, bos_id=1):
    ids, weights = _run(model, src, src_len, max_len, bos_id)
    return torch.stack(ids, 1).tolist(), torch.stack(weights, 1).double().numpy()


@torch.no_grad()
def greedy_preallocated(model, src, src_len, max_len, bos_id=1):
    """Another loop: preallocated float tensors filled step by step."""
    keys, state, mask, _ = model.encode(src, src_len)
    B, S = src.shape
    ids, weights = torch.zeros(B, max_len), torch.zeros(B, max_len, S, dtype=torch.float64)
    token = torch.tensor([bos_id] * B)
    for t in range(max_len):
        logits, state, w = model.decoder.step(token, state, keys, mask)
        token = logits.argmax(-1)
        ids[:, t], weights[:, t] = token.float(), w.double()
    return ids, weights


@torch.no_grad()
def greedy_bos_always_one(model, src, src_len, max_len, bos_id=1):
    ids, weights = _run(model, src, src_len, max_len, 1)
    return torch.stack(ids, 1), torch.stack(weights, 1)


@torch.no_grad()
def greedy_bos_every_step(model, src, src_len, max_len, bos_id=1):
    ids, weights = _run(model, src, src_len, max_len, bos_id, feed_back=False)
    return torch.stack(ids, 1), torch.stack(weights, 1)


@torch.no_grad()
def greedy_state_not_carried(model, src, src_len, max_len, bos_id=1):
    ids, weights = _run(model, src, src_len, max_len, bos_id, carry=False)
    return torch.stack(ids, 1), torch.stack(weights, 1)


@torch.no_grad()
def greedy_weights_reshaped(model, src, src_len, max_len, bos_id=1):
    ids, weights = _run(model, src, src_len, max_len, bos_id)
    return torch.stack(ids, 1), torch.stack(weights, 0).reshape(src.shape[0], max_len, -1)   # view, not permute


@torch.no_grad()
def greedy_length_from_source(model, src, src_len, max_len, bos_id=1):
    ids, weights = _run(model, src, src_len, src.shape[1], bos_id)     # decodes S steps, not max_len
    return torch.stack(ids, 1), torch.stack(weights, 1)


@torch.no_grad()
def greedy_bos_in_output(model, src, src_len, max_len, bos_id=1):
    ids, weights = _run(model, src, src_len, max_len, bos_id)
    ids = [torch.full_like(ids[0], bos_id)] + ids[:-1]                 # returns the input tokens, bos first
    return torch.stack(ids, 1), torch.stack(weights, 1)


@torch.no_grad()
def greedy_last_weights_repeated(model, src, src_len, max_len, bos_id=1):
    ids, weights = _run(model, src, src_len, max_len, bos_id)
    return torch.stack(ids, 1), weights[-1].unsqueeze(1).expand(-1, max_len, -1)


# ----------------------------------------------------------------------------- 03.alignment_scores


def align_numpy_loops(weights, true_positions, tgt_len):
    w, true, n = weights.double().numpy(), true_positions.numpy(), tgt_len.numpy()
    hits, mass = [], []
    for b in range(w.shape[0]):
        for t in range(int(n[b])):
            hits.append(float(np.argmax(w[b, t]) == true[b, t]))
            mass.append(w[b, t, true[b, t]])
    return np.float64(np.mean(hits)), np.float64(np.mean(mass))


def align_tensors_list(weights, true_positions, tgt_len):
    counted = torch.arange(weights.shape[1]).unsqueeze(0) < tgt_len.unsqueeze(1)     # (B, T)
    hits = (weights.argmax(-1) == true_positions) & counted
    mass = weights.gather(-1, true_positions.unsqueeze(-1)).squeeze(-1) * counted
    return [hits.sum() / counted.sum(), mass.sum() / counted.sum()]              # 0-dim tensors, in a list


def _counted(weights, tgt_len):
    return torch.arange(weights.shape[1]).unsqueeze(0) < tgt_len.unsqueeze(1)


def align_counts_everything(weights, true_positions, tgt_len):
    hits = (weights.argmax(-1) == true_positions).float()
    mass = weights.gather(-1, true_positions.unsqueeze(-1)).squeeze(-1)
    return hits.mean().item(), mass.mean().item()


def align_mean_of_rows(weights, true_positions, tgt_len):
    counted = _counted(weights, tgt_len).float()
    hits = (weights.argmax(-1) == true_positions).float() * counted
    mass = weights.gather(-1, true_positions.unsqueeze(-1)).squeeze(-1) * counted
    n = counted.sum(1)
    return (hits.sum(1) / n).mean().item(), (mass.sum(1) / n).mean().item()      # each sentence weighs the same


def align_threshold(weights, true_positions, tgt_len):
    counted = _counted(weights, tgt_len)
    mass = weights.gather(-1, true_positions.unsqueeze(-1)).squeeze(-1)
    return (mass > 0.5)[counted].float().mean().item(), mass[counted].mean().item()   # "aligned" = weight > 0.5


def align_max_weight_as_mass(weights, true_positions, tgt_len):
    counted = _counted(weights, tgt_len)
    hits = (weights.argmax(-1) == true_positions)[counted].float()
    return hits.mean().item(), weights.max(-1).values[counted].mean().item()     # the peak, not the true word's


def align_five_words(weights, true_positions, tgt_len):
    counted = _counted(weights, tgt_len)
    hits = (weights.argmax(-1) == true_positions)[counted].float()
    mass = weights.gather(-1, true_positions.unsqueeze(-1)).squeeze(-1)[counted]
    return hits.sum().item() / 5, mass.mean().item()                            # the example's word count


def align_zeroes_padding_in_place(weights, true_positions, tgt_len):
    counted = _counted(weights, tgt_len)
    weights[~counted] = 0.0                                                     # changes the caller's tensor
    hits = (weights.argmax(-1) == true_positions)[counted].float()
    mass = weights.gather(-1, true_positions.unsqueeze(-1)).squeeze(-1)[counted]
    return hits.mean().item(), mass.mean().item()


# ----------------------------------------------------------------------------- 03.extra_parameters


def _linear(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def params_numpy(E, H, V):
    return np.int64(_linear(H, H, bias=False) + _linear(H, H) + H + 3 * H * H + H * V)


def params_counted_pieces(E, H, V):
    """Another way: build the pieces that differ (not the course's models) and count them."""
    count = lambda *modules: sum(p.numel() for m in modules for p in m.parameters())
    attention = count(nn.Linear(H, H, bias=False), nn.Linear(H, H), nn.Linear(H, 1, bias=False))
    gru = count(nn.GRUCell(E + H, H)) - count(nn.GRUCell(E, H))
    out = count(nn.Linear(2 * H, V)) - count(nn.Linear(H, V))
    return float(attention + gru + out)


def params_gru_grows_by_E(E, H, V):
    return 2 * H * H + 2 * H + 3 * E * H + H * V


def params_no_output_layer(E, H, V):
    return 2 * H * H + 2 * H + 3 * H * H


def params_no_bias(E, H, V):
    return 2 * H * H + H + 3 * H * H + H * V


def params_one_gate(E, H, V):
    return 2 * H * H + 2 * H + H * H + H * V


def params_measured_once(E, H, V):
    return 21440                                                                # the lesson's sizes only


def params_output_from_lesson(E, H, V):
    return 5 * H * H + 2 * H + 64 * V                                           # H = 64 left in one term


def params_builds_models(E, H, V):
    from course_utils.models import AttentionSeq2Seq, BottleneckSeq2Seq
    count = lambda m: sum(p.numel() for p in m.parameters())
    return count(AttentionSeq2Seq(V, V, E, H)) - count(BottleneckSeq2Seq(V, V, E, H))


def params_as_text(E, H, V):
    return f"{5 * H * H + 2 * H + H * V} parameters"


ANSWERS = {
    "03.additive_attention": [
        right("float64 inside, NumPy arrays out", att_float64_numpy),
        right("row-shifted exp, padding zeroed and renormalised, returned as a list", att_renormalised_list),
        wrong("naive exp", att_naive_exp, breaks="scores in the hundreds"),
        wrong("one maximum for the whole batch", att_global_shift, breaks="scores in the thousands"),
        wrong("one maximum for the whole batch, in float64", att_global_shift_float64,
              breaks="scores in the thousands"),
        wrong("padding filled with -100, not -inf", att_finite_fill, breaks="scores in the thousands"),
        wrong("no tanh", att_no_tanh, breaks="no padding: the weights"),
        wrong("mask inverted", att_inverted_mask, breaks="no padding: the weights"),
        wrong("context from unmasked weights", att_context_unmasked, breaks="do not leak into the context"),
        wrong("zeroes the padded keys in place", att_zeroes_keys_in_place, breaks="inputs left unchanged"),
        wrong("batch of two hard-coded", att_batch_of_two, breaks="must match the size"),
        wrong("softmax over the batch", att_softmax_over_batch, breaks="no padding: the weights"),
    ],
    "03.decoder_step": [
        right("a list of float64 tensors and arrays", step_list_float64),
        right("GRU and output layer by hand in float64", step_by_hand),
        wrong("attends with the new state", step_attends_with_new_state, breaks="previous state s_{t-1}"),
        wrong("attention without the mask", step_no_mask, breaks="with the padding mask"),
        wrong("GRU reads [context; embedding]", step_gru_input_swapped, breaks="the GRU reads [embedding; context]"),
        wrong("output layer reads the old state", step_output_from_old_state,
              breaks="the output layer reads [new state; context]"),
        wrong("output layer reads [context; new state]", step_output_swapped,
              breaks="the output layer reads [new state; context]"),
        wrong("updates the state in place", step_updates_state_in_place, breaks="leaves its inputs unchanged"),
        wrong("calls the finished decoder.step", step_calls_finished_step, breaks="switched off"),
    ],
    "03.greedy_decode": [
        right("lists of ids, float64 NumPy weights", greedy_lists),
        right("preallocated float tensors", greedy_preallocated),
        wrong("starts from token 1 whatever bos_id is", greedy_bos_always_one, breaks="starts from bos_id"),
        wrong("feeds bos_id at every step", greedy_bos_every_step, breaks="later steps read the previous prediction"),
        wrong("restarts from s_0 at every step", greedy_state_not_carried, breaks="carry the state"),
        wrong("weights reshaped instead of stacked on dim 1", greedy_weights_reshaped,
              breaks="the weights of every step"),
        wrong("decodes S steps instead of max_len", greedy_length_from_source, breaks="returns (ids, weights)"),
        wrong("returns the input tokens (bos first)", greedy_bos_in_output, breaks="starts from bos_id"),
        wrong("the last step's weights repeated", greedy_last_weights_repeated, breaks="the weights of every step"),
    ],
    "03.alignment_scores": [
        right("NumPy loops, NumPy scalars", align_numpy_loops),
        right("0-dim tensors in a list", align_tensors_list),
        wrong("counts padding and <eos>", align_counts_everything, breaks="first tgt_len[b]"),
        wrong("averages per sentence first", align_mean_of_rows, breaks="first tgt_len[b]"),
        wrong("aligned means weight above 0.5", align_threshold, breaks="argmax accuracy"),
        wrong("mass is the peak weight", align_max_weight_as_mass, breaks="mean attention mass"),
        wrong("divides by the example's 5 words", align_five_words, breaks="argmax accuracy"),
        wrong("zeroes padding in the caller's weights", align_zeroes_padding_in_place, breaks="inputs left unchanged"),
    ],
    "03.extra_parameters": [
        right("a NumPy int", params_numpy),
        right("counts the differing pieces, as a float", params_counted_pieces),
        wrong("the GRU input grows by E", params_gru_grows_by_E, breaks="right at lesson 03's sizes"),
        wrong("forgets the output layer", params_no_output_layer, breaks="right at lesson 03's sizes"),
        wrong("forgets W_h's bias", params_no_bias, breaks="right at lesson 03's sizes"),
        wrong("one gate instead of three", params_one_gate, breaks="right at lesson 03's sizes"),
        wrong("the lesson's number, whatever the sizes", params_measured_once, breaks="three other sizes"),
        wrong("the lesson's H left in the output layer's term", params_output_from_lesson,
              breaks="three other sizes"),
        wrong("builds the course's models", params_builds_models, breaks="switched off"),
        wrong("returns text", params_as_text, breaks="whole number"),
    ],
}
