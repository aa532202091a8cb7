"""Train lesson 11's copy-task models and store them as a small checkpoint.

    python -m course_utils.models.memory_checkpoint --seed 0

trains, for one seed, the Neural Turing Machine (content and location addressing), the same NTM with
content addressing only, and an LSTM of about the same number of parameters, all on copy sequences of
1 to 8 vectors of 6 bits, and writes ``course_utils/models/checkpoints/ntm_copy_seed{seed}.pt``
(parameters stored in float16, about 50 KB). ``--sweep 0 1 2 3 4`` trains several seeds and prints
each one's report (the spread that lesson 11 quotes) without writing anything. On a CPU one seed takes
a few minutes with one thread; the lesson loads the stored checkpoint on a CPU and trains from scratch
on a GPU.

Shapes: B batch, T steps, N memory slots.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..data.copy_task import bit_accuracy, copy_batch, copy_loss, sample_copy_batch, sequence_accuracy
from ..training import train
from .memory import NTM, CopyLSTM

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
BITS, TRAIN_MIN, TRAIN_MAX, TEST_LENGTH = 6, 1, 8, 16
CONFIG = dict(bits=BITS, hidden=32, slots=24, width=8, lstm_hidden=40, batch=32, steps=1200, lr=3e-3, clip=10.0,
              lstm_steps=15000, lstm_lr=1e-2, train_lengths=(TRAIN_MIN, TRAIN_MAX), test_length=TEST_LENGTH)


def checkpoint_path(seed: int = 0) -> Path:
    """Where the checkpoint of ``seed`` lives inside the package."""
    return CHECKPOINT_DIR / f"ntm_copy_seed{seed}.pt"


def build_models(config: dict = CONFIG) -> dict:
    """The three untrained models: {'ntm', 'content_only', 'lstm'}."""
    c = config
    return dict(ntm=NTM(c["bits"] + 1, c["bits"], hidden=c["hidden"], slots=c["slots"], width=c["width"]),
                content_only=NTM(c["bits"] + 1, c["bits"], hidden=c["hidden"], slots=c["slots"], width=c["width"],
                                 location=False),
                lstm=CopyLSTM(c["bits"] + 1, c["bits"], hidden=c["lstm_hidden"]))


def train_copy_model(model: torch.nn.Module, seed: int, *, steps: int | None = None, config: dict = CONFIG,
                     progress: bool = False, desc: str = "copy task", log_every: int = 50):
    """Train one model on the copy task (lengths 1 .. 8) with the course's training loop; return its History.

    The batches come from a generator seeded with ``1000 + seed``; torch's global seed is set to ``seed``
    by the caller before the model is built. An LSTM gets ``lstm_steps`` steps at ``lstm_lr`` (it is
    cheap per step and slow to fit the training lengths), an NTM ``steps`` at ``lr``.
    """
    c = config
    lstm = isinstance(model, CopyLSTM)
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(1000 + seed)
    lo, hi = c["train_lengths"]
    return train(model, lambda step: sample_copy_batch(c["batch"], lo, hi, c["bits"], generator=gen, device=device),
                 lambda m, b: copy_loss(m(b.inputs), b), steps=steps or c["lstm_steps" if lstm else "steps"],
                 lr=c["lstm_lr" if lstm else "lr"], clip=c["clip"],
                 log_every=log_every, desc=desc, progress=progress)


def write_shifts(write: torch.Tensor, length: int) -> torch.Tensor:
    """How far the write head's focus (its argmax slot) moves at each input step, as a signed offset
    around the circular memory (from -N/2 + 1 to N/2: a move from the last slot to slot 0 is +1).

    Shapes:
        - write: (B, T, N) write weightings of copy examples of ``length`` vectors
        - output: (B, length - 1) long, the move from step t to step t + 1 for t = 0 .. length - 2
    """
    N = write.shape[-1]
    focus = write[:, :length].argmax(-1)                                          # (B, length)
    return (focus[:, 1:] - focus[:, :-1] + N // 2 - 1) % N - (N // 2 - 1)


@torch.no_grad()
def copy_report(models: dict, *, seed: int = 7, n: int = 200, lengths=(TRAIN_MAX, TEST_LENGTH), bits: int = BITS) -> dict:
    """Bit and sequence accuracy of each model at each length, on fresh batches of ``n`` sequences, and
    for NTMs the share of input steps where the write focus moves exactly one slot, and the mean
    weight on the focused slot (at the longest length)."""
    report = {}
    for name, model in models.items():
        model.eval()
        device = next(model.parameters()).device
        row = {}
        for L in lengths:
            batch = copy_batch(n, L, bits, seed=seed + L, device=device)
            if isinstance(model, NTM):
                logits, weights = model(batch.inputs, return_weights=True)
            else:
                logits = model(batch.inputs)
            row[f"bits@{L}"] = bit_accuracy(logits, batch)
            row[f"seqs@{L}"] = sequence_accuracy(logits, batch)
            if isinstance(model, NTM) and L == max(lengths):
                moves = write_shifts(weights["write"], L)                          # (n, L - 1)
                row["one_slot_moves"] = float((moves.abs() == 1).float().mean())
                row["same_direction"] = float((moves == moves[:, :1]).all(-1).float().mean())
                row["write_peak"] = float(weights["write"][:, :L].amax(-1).mean())
        report[name] = row
    return report


def save_checkpoint(models: dict, path: Path, seed: int, config: dict = CONFIG, extra: dict | None = None) -> None:
    """Store the models' parameters in float16 with the config and seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu()
                    for k, v in m.state_dict().items()} for name, m in models.items()}
    torch.save(dict(seed=seed, config=config, state=state, extra=extra or {}), path)


def load_checkpoint(seed: int = 0, device=None, path: Path | None = None) -> tuple[dict, dict]:
    """The three trained models of a checkpoint (float32, on ``device``, in eval mode) and its metadata."""
    data = torch.load(path or checkpoint_path(seed), map_location="cpu", weights_only=True)
    models = build_models(data["config"])
    for name, model in models.items():
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in data["state"][name].items()})
        model.to(device if device is not None else "cpu").eval()
    return models, {k: v for k, v in data.items() if k != "state"}


def train_all(seed: int, steps: int | None = None, device=None, progress: bool = False,
              names=("ntm", "content_only", "lstm")) -> tuple[dict, dict]:
    """Train the models of one seed (each from its own seeded start, so each is the same whichever others
    are trained); return them and their losses."""
    losses = {}
    models = {}
    for name in names:
        torch.manual_seed(seed)
        model = build_models()[name].to(device if device is not None else "cpu")
        history = train_copy_model(model, seed, steps=steps, progress=progress, desc=f"{name}, seed {seed}")
        losses[name] = history.loss
        models[name] = model
    return models, losses


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--sweep", type=int, nargs="*", help="train these seeds and print their reports; write nothing")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--models", nargs="+", default=["ntm", "content_only", "lstm"],
                        help="train only these; the others are kept from the existing checkpoint at --out")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for seed in (args.sweep if args.sweep else [args.seed]):
        models, losses = train_all(seed, args.steps, names=args.models)
        if not args.sweep:
            path = args.out or checkpoint_path(seed)
            if set(args.models) != {"ntm", "content_only", "lstm"}:
                kept, meta = load_checkpoint(seed, path=path)
                models = {name: models.get(name, kept[name]) for name in ("ntm", "content_only", "lstm")}
                losses = {**meta["extra"].get("final_loss", {}), **{k: v for k, v in losses.items()}}
            save_checkpoint(models, path, seed, extra=dict(final_loss={k: (v[-1] if isinstance(v, list) else v)
                                                                       for k, v in losses.items()}))
            models, _ = load_checkpoint(seed, path=path)          # report what was stored (float16 parameters)
            print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
        print(json.dumps(dict(seed=seed, final_loss={k: round(v[-1] if isinstance(v, list) else v, 4)
                                                     for k, v in losses.items()},
                              report=copy_report(models)), indent=None), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
